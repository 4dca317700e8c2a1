//! Debian's nginx in front of a node as a shared HTTP cache
//! (`proxy_cache`, `proxy_cache_revalidate on`), as operators put one:
//! it serves on a port the test bound (handed over as an inherited
//! socket, nginx's `NGINX=3;`), keeps everything in a directory of its
//! own, says what its cache did in `X-Cache-Status`, and is killed with
//! its worker when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_ports, hand_over_port, try_get, TempDir};

/// A running nginx.
pub struct Nginx {
    pub url: String,
    child: Child,
    dir: TempDir,
}

impl Nginx {
    /// nginx caching what `upstream` (`http://host:port`) answers: 200s
    /// and 206s without a lifetime of their own for `valid` (`1s`), then
    /// revalidated with a conditional request.
    pub async fn cache_in_front_of(upstream: &str, valid: &str) -> Nginx {
        let dir = TempDir::new("nginx");
        let port = free_ports(1)[0];
        let root = dir.0.display().to_string();
        let config = format!(
            "daemon off;
master_process on;
worker_processes 1;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log notice;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  proxy_cache_path {root}/cache keys_zone=groupcached:1m;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_cache groupcached;
      proxy_cache_valid 200 206 {valid};
      proxy_cache_revalidate on;
      add_header X-Cache-Status $upstream_cache_status always;
    }}
  }}
}}
"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("writing nginx.conf");
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .env("NGINX", "3;")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that its worker dies with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        hand_over_port(&mut command, port);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting nginx: {e} (scripts/deps installs it)"));
        let nginx = Nginx {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let probe = format!("{}/healthz", nginx.url);
        eventually(Duration::from_secs(10), "nginx answering", || async {
            try_get(&probe).await.ok()
        })
        .await;
        nginx
    }

    /// nginx's error log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
