// Package gonode is what groupcached's two Go test nodes (tests/gopeer, a
// golang/groupcache node, and tests/forkpeer, a node speaking the forks'
// wire) share: how they are started (a listener handed over on fd 3),
// their repeatable -group flag, their HTTP origin loads with groupcached's
// error texts, and the -ring mode that prints each key's owner.
//
// scripts/go makes it importable as groupcached/gonode in GOPATH mode.
package gonode

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Listener is the socket passed as fd 3 with LISTEN_FDS=1 (systemd socket
// activation, as the tests start nodes), or else a new one on addr.
func Listener(addr string) (net.Listener, error) {
	if os.Getenv("LISTEN_FDS") == "1" {
		return net.FileListener(os.NewFile(3, "listener"))
	}
	return net.Listen("tcp", addr)
}

// GroupFlags collects repeated -group NAME=ORIGIN_TEMPLATE flags.
type GroupFlags []string

func (g *GroupFlags) String() string     { return strings.Join(*g, ",") }
func (g *GroupFlags) Set(v string) error { *g = append(*g, v); return nil }

// Escape percent-encodes every byte outside A-Z a-z 0-9 - _ . ~, as
// groupcached does for origin URLs.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

var client = &http.Client{Timeout: 10 * time.Second}

// LoadOrigin GETs key of group from an origin URL template ({group} and
// {key} replaced by their escapes). A failure has groupcached's origin's
// error text; status is the origin's HTTP status, 0 when it gave none.
// The template "echo" loads the key itself as its value, as groupcached's
// built-in NAME=echo origin does.
func LoadOrigin(template, group, key string) (body []byte, status int, err error) {
	if template == "echo" {
		return []byte(key), http.StatusOK, nil
	}
	target := strings.ReplaceAll(template, "{group}", Escape(group))
	resp, err := client.Get(strings.ReplaceAll(target, "{key}", Escape(key)))
	if err != nil {
		return nil, 0, fmt.Errorf("origin request failed: %v", err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("origin returned %s", resp.Status)
	}
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("origin request failed: %v", err)
	}
	return body, resp.StatusCode, nil
}

// PrintOwners reads hex-encoded keys from stdin, one per line, and prints
// each key's owner by owner, one per line.
func PrintOwners(owner func(key string) string) {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		key, err := hex.DecodeString(in.Text())
		if err != nil {
			log.Fatalf("bad hex key %q: %v", in.Text(), err)
		}
		fmt.Fprintln(out, owner(string(key)))
	}
}
