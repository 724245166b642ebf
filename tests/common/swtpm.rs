//! A software TPM (Debian's `swtpm`) for the TPM key slot tests: started on loopback ports
//! of its own, with its state in a temp dir, killed on drop. Under CI a missing swtpm fails
//! the test (`need`), elsewhere it skips.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Swtpm {
    child: Child,
    _state: tempfile::TempDir,
    pub port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Swtpm {
    /// A fresh TPM (its own seeds: a slot sealed on another one does not load here), or None
    /// when swtpm is not installed (reason printed; a failure under CI).
    pub fn start(test: &str) -> Option<Swtpm> {
        if !super::need("swtpm", test) {
            return None;
        }
        let state = tempfile::tempdir().unwrap();
        // The swtpm TCTI reaches the control port at the server port + 1: two free ones.
        let (port, ctrl) = loop {
            let a = free_port();
            if a < u16::MAX && TcpListener::bind(("127.0.0.1", a + 1)).is_ok() {
                break (a, a + 1);
            }
        };
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--tpmstate")
            .arg(format!("dir={}", state.path().display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start swtpm");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Swtpm {
            child,
            _state: state,
            port,
        })
    }

    /// The TCTI string tutela and tpm2-tools take.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Runs a tpm2-tools command against this TPM; panics on failure.
    pub fn tool(&self, args: &[&str]) -> String {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .expect("run a tpm2-tools command");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file holding `text` and a newline, mode 0600, in `dir`.
pub fn secret_file(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}
