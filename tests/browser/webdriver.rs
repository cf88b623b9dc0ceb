//! Just enough WebDriver to drive headless Chromium through chromedriver:
//! JSON over HTTP/1.1 to 127.0.0.1, with hyper and serde_json.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// The flags Chromium runs with: headless, and quiet towards any network.
pub(crate) const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The first file named `name` in `PATH`.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running chromedriver, killed on drop together with the browsers it
/// started (they share its process group).
pub(crate) struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    /// Starts `chromedriver` on a free 127.0.0.1 port and waits until it is
    /// ready.
    pub(crate) async fn start(chromedriver: &Path) -> Self {
        let port = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
            listener.local_addr().expect("its address").port()
        };
        let mut command = Command::new(chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start chromedriver");
        let driver = Self {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        };
        let ready = async {
            loop {
                if let Ok((StatusCode::OK, status)) =
                    driver.try_send(Method::GET, "/status", None).await
                {
                    if status["value"]["ready"] == true {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .expect("chromedriver did not become ready within 10 s");
        driver
    }

    /// Starts a browser session.
    pub(crate) async fn session(&self, chromium: &Path, args: &[String]) -> Session<'_> {
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": args,
                    },
                },
            },
        });
        let value = self
            .send(Method::POST, "/session", Some(capabilities))
            .await;
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_owned();
        Session { driver: self, id }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        let (status, value) =
            tokio::time::timeout(Duration::from_secs(20), self.try_send(method, path, body))
                .await
                .unwrap_or_else(|_| panic!("webdriver {what}: no answer within 20 s"))
                .unwrap_or_else(|error| panic!("webdriver {what}: {error}"));
        assert_eq!(status, StatusCode::OK, "webdriver {what}: {value}");
        value["value"].clone()
    }

    async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error + Send + Sync>> {
        let stream = TcpStream::connect(self.addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(connection);
        let body = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Full::new(body))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        connection.abort();
        Ok((status, serde_json::from_slice(&bytes)?))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A browser left behind by a failed test goes with the group.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session; [`close`](Session::close) ends the browser.
pub(crate) struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    /// Loads `url` and waits for the page to load.
    pub(crate) async fn goto(&self, url: &str) {
        let path = format!("/session/{}/url", self.id);
        self.driver
            .send(Method::POST, &path, Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns its result.
    pub(crate) async fn execute(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/sync", self.id);
        self.driver
            .send(
                Method::POST,
                &path,
                Some(json!({ "script": script, "args": [] })),
            )
            .await
    }

    /// Ends the session, which quits the browser.
    pub(crate) async fn close(self) {
        let path = format!("/session/{}", self.id);
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            self.driver.try_send(Method::DELETE, &path, None),
        )
        .await;
    }
}
