//! What a media type may be (RFC 9110 §8.3.1): `type/subtype`, each a
//! token, then parameters `; name=value`, each value a token or a quoted
//! string (empty parameters allowed). `--content-type` is checked with it, so a group never sends a
//! `Content-Type` a client cannot parse.

use hyper::header::HeaderValue;

/// Why a media type was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// Nothing was given.
    #[error("a media type must not be empty")]
    Empty,
    /// No `type/subtype`, or either is not a token.
    #[error("expected type/subtype, e.g. text/html or application/json")]
    NotTypeSubtype,
    /// A parameter that is not `name=value`.
    #[error("a parameter must be name=value, e.g. charset=utf-8")]
    BadParameter,
}

/// `text` as a `Content-Type` value, if it is a media type.
pub(crate) fn parse(text: &str) -> Result<HeaderValue, MediaTypeError> {
    let text = text.trim_matches(is_ows);
    if text.is_empty() {
        return Err(MediaTypeError::Empty);
    }
    let (essence, mut parameters) = match text.split_once(';') {
        Some((essence, rest)) => (essence.trim_end_matches(is_ows), Some(rest)),
        None => (text, None),
    };
    let (kind, subtype) = essence
        .split_once('/')
        .ok_or(MediaTypeError::NotTypeSubtype)?;
    if !is_token(kind) || !is_token(subtype) {
        return Err(MediaTypeError::NotTypeSubtype);
    }
    while let Some(rest) = parameters {
        // RFC 9110 §5.6.6 allows empty parameters: `text/html;`.
        let rest = rest.trim_start_matches(is_ows);
        if rest.is_empty() {
            break;
        }
        if let Some(next) = rest.strip_prefix(';') {
            parameters = Some(next);
            continue;
        }
        let (name, value) = rest.split_once('=').ok_or(MediaTypeError::BadParameter)?;
        if !is_token(name) {
            return Err(MediaTypeError::BadParameter);
        }
        let (value, after) = split_parameter_value(value)?;
        if value.is_empty() {
            return Err(MediaTypeError::BadParameter);
        }
        let after = after.trim_start_matches(is_ows);
        parameters = match after.strip_prefix(';') {
            Some(next) => Some(next),
            None if after.is_empty() => None,
            None => return Err(MediaTypeError::BadParameter),
        };
    }
    // Tokens, quoted strings of visible ASCII, `;`, `=` and spaces are
    // all valid in a header value.
    HeaderValue::from_str(text).map_err(|_| MediaTypeError::BadParameter)
}

/// A parameter's value (a token or a quoted string) and what follows it.
fn split_parameter_value(text: &str) -> Result<(&str, &str), MediaTypeError> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return Ok((&text[..i + 2], &quoted[i + 1..])),
                c if c == '\t' || (' '..='~').contains(&c) => {}
                _ => return Err(MediaTypeError::BadParameter),
            }
        }
        return Err(MediaTypeError::BadParameter);
    }
    let end = text.find(|c| !is_tchar(c)).unwrap_or(text.len());
    Ok(text.split_at(end))
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_tchar)
}

/// RFC 9110 §5.6.2's `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_with_and_without_parameters_are_kept_as_given() {
        for good in [
            "text/html",
            "application/json",
            "text/html; charset=utf-8",
            "text/html;charset=UTF-8",
            "multipart/mixed; boundary=\"a b;c\"",
            "application/vnd.api+json ; q=1 ; x=\"\\\"\"",
            "  image/svg+xml  ",
            "text/plain; charset=utf-8;",
        ] {
            assert_eq!(parse(good).unwrap(), good.trim(), "{good}");
        }
    }

    #[test]
    fn what_is_not_a_media_type_is_refused_saying_why() {
        for (bad, error) in [
            ("", MediaTypeError::Empty),
            ("   ", MediaTypeError::Empty),
            ("text", MediaTypeError::NotTypeSubtype),
            ("text/", MediaTypeError::NotTypeSubtype),
            ("/html", MediaTypeError::NotTypeSubtype),
            ("text/html/x", MediaTypeError::NotTypeSubtype),
            ("te xt/html", MediaTypeError::NotTypeSubtype),
            ("text/html; charset", MediaTypeError::BadParameter),
            ("text/html; charset=", MediaTypeError::BadParameter),
            ("text/html; =utf-8", MediaTypeError::BadParameter),
            ("text/html; charset=\"utf-8", MediaTypeError::BadParameter),
            ("text/html; charset=utf 8", MediaTypeError::BadParameter),
            ("text/html\r\nX-Evil: 1", MediaTypeError::NotTypeSubtype),
            ("text/html; a=\"\u{7f}\"", MediaTypeError::BadParameter),
            ("text/é", MediaTypeError::NotTypeSubtype),
        ] {
            assert_eq!(parse(bad), Err(error), "{bad:?}");
        }
    }
}
