//! `ffarm sandbox-probe` (hidden): one attempt at something a hostile input would try, made
//! from inside the sandbox an engine process gets (the same `enter`), or with it off, so the
//! tests can show each is refused with it and possible without. Prints the sandbox's level
//! as a JSON line, then `allowed: …` or `denied: …`; a call the filter traps ends the
//! process with its own line on stderr instead.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{Limits, Policy};

/// What the probe is asked to do.
#[derive(Debug, Clone)]
pub struct Probe {
    pub sandbox: bool,
    pub input: PathBuf,
    pub staging: PathBuf,
    pub memory_bytes: Option<u64>,
    pub check: String,
    pub arg: Option<String>,
}

/// Runs the probe; its exit status (0 whatever the answer, 2 for a bad request).
pub fn run(probe: &Probe) -> u8 {
    if probe.sandbox {
        let mut limits = Limits::default();
        if let Some(m) = probe.memory_bytes {
            limits.memory_bytes = m;
        }
        let policy = Policy {
            read: vec![probe.input.clone()],
            write: vec![probe.staging.clone()],
            limits,
        };
        match super::enter(&policy) {
            Ok(level) => println!("{}", serde_json::to_string(&level).unwrap_or_default()),
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        }
    } else {
        println!("{{}}");
    }
    let arg = probe.arg.as_deref().unwrap_or("");
    let answer = match probe.check.as_str() {
        "read" => read(Path::new(arg)),
        "write" => write(Path::new(arg)),
        "connect" => connect(arg),
        "resolve" => resolve(arg),
        "exec" => exec(),
        "fork" => fork(),
        "allocate" => allocate(arg.parse().unwrap_or(0)),
        "env" => credentials(),
        other => {
            eprintln!("unknown check {other:?}");
            return 2;
        }
    };
    match answer {
        Ok(what) => println!("allowed: {what}"),
        Err(why) => println!("denied: {why}"),
    }
    let _ = std::io::stdout().flush();
    0
}

type Answer = Result<String, String>;

fn read(path: &Path) -> Answer {
    if path.is_dir() {
        let n = std::fs::read_dir(path).map_err(|e| e.to_string())?.count();
        return Ok(format!("listed {} ({n} entries)", path.display()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    Ok(format!("read {} bytes of {}", bytes.len(), path.display()))
}

fn write(path: &Path) -> Answer {
    std::fs::write(path, b"written from the probe").map_err(|e| e.to_string())?;
    Ok(format!("wrote {}", path.display()))
}

fn connect(addr: &str) -> Answer {
    std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    Ok(format!("connected to {addr}"))
}

fn resolve(host: &str) -> Answer {
    use std::net::ToSocketAddrs;
    let found: Vec<_> = (host, 80)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    Ok(format!("{host} is {found:?}"))
}

/// Replaces the probe with `/bin/sh`, which says it ran.
fn exec() -> Answer {
    let sh = c"/bin/sh";
    let args = [
        sh.as_ptr(),
        c"-c".as_ptr(),
        c"echo 'allowed: ran /bin/sh'".as_ptr(),
    ];
    let argv = [args[0], args[1], args[2], std::ptr::null()];
    let _ = std::io::stdout().flush();
    // SAFETY: NUL-terminated strings and a null-terminated argument list.
    unsafe { libc::execv(sh.as_ptr(), argv.as_ptr()) };
    Err(std::io::Error::last_os_error().to_string())
}

fn fork() -> Answer {
    // SAFETY: the child only exits.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().to_string()),
        0 => unsafe { libc::_exit(0) },
        pid => {
            let mut status = 0;
            // SAFETY: waiting for the child just made.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            Ok(format!("started process {pid}"))
        }
    }
}

fn allocate(bytes: usize) -> Answer {
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(bytes)
        .map_err(|e| format!("{bytes} bytes: {e}"))?;
    v.resize(bytes, 1);
    Ok(format!("allocated and touched {} bytes", v.len()))
}

fn credentials() -> Answer {
    const SECRET: &[&str] = &["AWS_", "GOOGLE_", "AZURE_", "FFARM_"];
    let found: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| SECRET.iter().any(|p| k.starts_with(p)))
        .collect();
    if found.is_empty() {
        return Err("no credential variable in the environment".into());
    }
    Ok(format!("found {}", found.join(", ")))
}
