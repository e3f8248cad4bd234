//! An incremental Server-Sent Events parser (the subset of the WHATWG event-stream format the
//! revocation feed uses: `id`, `event`, `data`, comments, blank-line dispatch).
//!
//! Bytes arrive in arbitrary chunks; events come out whole. The buffered size is bounded, so a
//! misbehaving server cannot make the verifier allocate without limit.

/// Largest event (all its lines together) accepted.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("event larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    #[error("event stream is not UTF-8")]
    NotUtf8,
}

#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    pending: Event,
    has_data: bool,
    size: usize,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, SseError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Some(ev) = self.line_done(&line)? {
                    out.push(ev);
                }
            } else {
                self.line.push(b);
                self.size += 1;
                if self.size > MAX_EVENT_BYTES {
                    return Err(SseError::TooLarge);
                }
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8]) -> Result<Option<Event>, SseError> {
        if line.is_empty() {
            self.size = 0;
            let ev = std::mem::take(&mut self.pending);
            let had = std::mem::replace(&mut self.has_data, false);
            // An event with neither data nor a name carries nothing (e.g. a lone `id:`).
            return Ok((had || !ev.event.is_empty()).then_some(ev));
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => self.pending.id = Some(value.to_owned()),
            "event" => self.pending.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let stream = b"id: 1\nevent: revocation\ndata: {\"a\":1}\n\n: keepalive\n\nevent: heartbeat\r\ndata: x\r\ndata: y\r\n\r\n";
        let mut p = Parser::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(3) {
            got.extend(p.push(chunk).expect("parse"));
        }
        assert_eq!(
            got,
            vec![
                Event {
                    id: Some("1".into()),
                    event: "revocation".into(),
                    data: "{\"a\":1}".into()
                },
                Event {
                    id: None,
                    event: "heartbeat".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = Parser::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert_eq!(p.push(&big), Err(SseError::TooLarge));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut p = Parser::new();
        assert_eq!(p.push(b"data: \xff\n"), Err(SseError::NotUtf8));
    }
}
