//! The exec wire protocol, shared by the API, the workers' listener, the bridge between them
//! and the `ffarm exec` client. A session is one websocket: binary frames carry terminal bytes
//! (client → server: input; server → client: output), text frames carry [`Control`] messages
//! as JSON. What to run is said by the upgrade request's query ([`Params`]).

use serde::{Deserialize, Serialize};

/// A control message (a text frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Client → server: the terminal's new size.
    Resize { cols: u16, rows: u16 },
    /// Client → server: no more input (closes the command's standard input; without a
    /// terminal only — on a terminal, Ctrl-D says it).
    Eof,
    /// Server → client: the command ended with this code (128 + N when killed by signal N);
    /// the server closes the socket next.
    Exit { code: i32 },
    /// Server → client: something the person at the terminal should know ("the task ended").
    Notice { message: String },
    /// Server → client: the session failed (stable `code`, `message` for people).
    Error { code: String, message: String },
    /// Server → client: the command's standard error, without a terminal (with one, it is
    /// part of the output).
    Stderr { data: String },
}

impl Control {
    pub fn to_json(&self) -> String {
        // A tagged enum of plain fields always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn notice(message: impl Into<String>) -> Control {
        Control::Notice {
            message: message.into(),
        }
    }

    pub fn error(code: &str, message: impl Into<String>) -> Control {
        Control::Error {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Most arguments a command may have, and their total size.
const MAX_ARGS: usize = 256;
const MAX_ARGV_BYTES: usize = 64 << 10;
/// Longest `user` kept.
const MAX_USER_CHARS: usize = 128;
/// Terminal sizes beyond this are refused as nonsense.
pub const MAX_SIDE: u16 = 1000;

/// A session's parameters: the query of `GET /v1/jobs/{id}/exec` (and of the worker's
/// `GET /v1/exec/{job}/{attempt}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `command=` (repeated): the argv to run, no shell in between; empty: the shell.
    pub command: Vec<String>,
    /// `tty=`: a pseudo-terminal (default: only for the shell).
    pub tty: bool,
    /// `cols=`, `rows=`: the terminal's size (default 80×24).
    pub cols: u16,
    pub rows: u16,
    /// `user=`: who is connecting, as the client says (`$USER@host`), for the history.
    pub user: Option<String>,
    /// `peer=`: the client's address as the API server saw it (set by the bridge; the API
    /// replaces any value a client sends).
    pub peer: Option<String>,
    /// `part=`: which running part of a split job (needed when several run).
    pub part: Option<u32>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            command: vec![],
            tty: true,
            cols: 80,
            rows: 24,
            user: None,
            peer: None,
            part: None,
        }
    }
}

impl Params {
    /// Parses a query string; unknown parameters are errors, `access_token` is ignored.
    pub fn from_query(query: &str) -> Result<Params, String> {
        let mut p = Params::default();
        let mut tty = None;
        let mut bytes = 0;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "command" => {
                    bytes += v.len() + 1;
                    if p.command.len() >= MAX_ARGS || bytes > MAX_ARGV_BYTES {
                        return Err(format!(
                            "command: at most {MAX_ARGS} arguments, {MAX_ARGV_BYTES} bytes"
                        ));
                    }
                    if v.contains('\0') {
                        return Err("command: arguments cannot hold NUL".into());
                    }
                    p.command.push(v.into_owned());
                }
                "tty" => {
                    tty = Some(match &*v {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(format!("tty: expected true or false, not '{v}'")),
                    })
                }
                "cols" => p.cols = side("cols", &v)?,
                "rows" => p.rows = side("rows", &v)?,
                "user" => p.user = Some(printable(&v)).filter(|u| !u.is_empty()),
                "peer" => p.peer = Some(printable(&v)).filter(|u| !u.is_empty()),
                "part" => {
                    p.part = Some(v.parse().map_err(|_| {
                        format!("part: expected a part's number (0, 1, …), not '{v}'")
                    })?)
                }
                "access_token" => {}
                other => {
                    return Err(format!(
                        "unknown parameter '{other}' (expected command, tty, cols, rows, user, part)"
                    ));
                }
            }
        }
        if p.command.first().is_some_and(|c| c.is_empty()) {
            return Err("command: the program name is empty".into());
        }
        p.tty = tty.unwrap_or(p.command.is_empty());
        Ok(p)
    }

    /// The query string that [`Params::from_query`] reads back.
    pub fn to_query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for c in &self.command {
            q.append_pair("command", c);
        }
        q.append_pair("tty", if self.tty { "true" } else { "false" });
        q.append_pair("cols", &self.cols.to_string());
        q.append_pair("rows", &self.rows.to_string());
        if let Some(u) = &self.user {
            q.append_pair("user", u);
        }
        if let Some(p) = &self.peer {
            q.append_pair("peer", p);
        }
        if let Some(n) = self.part {
            q.append_pair("part", &n.to_string());
        }
        q.finish()
    }

    /// Who is connecting, for the history: "alice@laptop from 10.0.0.7:51234".
    pub fn who(&self) -> String {
        let user = self.user.as_deref().unwrap_or("unknown user");
        match &self.peer {
            Some(peer) => format!("{user} from {peer}"),
            None => user.to_string(),
        }
    }

    /// The command for the history: its argv, or "interactive".
    pub fn describe(&self) -> serde_json::Value {
        if self.command.is_empty() {
            serde_json::Value::from("interactive")
        } else {
            serde_json::Value::from(self.command.clone())
        }
    }
}

fn side(name: &str, v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(n) if (1..=MAX_SIDE).contains(&n) => Ok(n),
        _ => Err(format!("{name}: expected 1 to {MAX_SIDE}, not '{v}'")),
    }
}

/// At most [`MAX_USER_CHARS`] characters, control characters dropped.
fn printable(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip_and_defaults() {
        let p = Params::from_query("").unwrap();
        assert_eq!(p, Params::default());
        assert!(p.tty, "the shell gets a terminal");
        let p = Params::from_query("command=ls&command=-l%20a&user=me%40h&access_token=x").unwrap();
        assert_eq!(p.command, ["ls", "-l a"]);
        assert!(!p.tty, "a command gets pipes unless asked");
        assert_eq!(p.user.as_deref(), Some("me@h"));
        assert_eq!(Params::from_query(&p.to_query()).unwrap(), p);
        let p = Params::from_query("command=top&tty=true&cols=132&rows=50&peer=1.2.3.4:5").unwrap();
        assert_eq!((p.tty, p.cols, p.rows), (true, 132, 50));
        assert_eq!(p.who(), "unknown user from 1.2.3.4:5");
        assert_eq!(Params::from_query(&p.to_query()).unwrap(), p);
        for bad in [
            "cols=0",
            "rows=x",
            "tty=yes",
            "shell=zsh",
            "command=",
            "cols=5000",
        ] {
            assert!(Params::from_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_messages_are_tagged_json() {
        assert_eq!(
            Control::Resize { cols: 80, rows: 24 }.to_json(),
            r#"{"type":"resize","cols":80,"rows":24}"#
        );
        assert_eq!(
            Control::Exit { code: 3 }.to_json(),
            r#"{"type":"exit","code":3}"#
        );
        let n: Control = serde_json::from_str(r#"{"type":"notice","message":"m"}"#).unwrap();
        assert_eq!(n, Control::notice("m"));
        let e: Control =
            serde_json::from_str(r#"{"type":"error","code":"c","message":"m"}"#).unwrap();
        assert_eq!(e, Control::error("c", "m"));
        assert_eq!(Control::Eof.to_json(), r#"{"type":"eof"}"#);
    }
}
