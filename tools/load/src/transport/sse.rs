//! A minimal incremental Server-Sent Events parser: enough of the
//! WHATWG rules for Durable Streams (`event:` and `data:` fields, events
//! ended by a blank line, LF or CRLF line ends, comments ignored).

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field (`message` when absent).
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// Accumulates bytes and yields complete events.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl Parser {
    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let nl = self.buf.iter().position(|b| *b == b'\n')?;
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                let data = self.data.take();
                let event = self.event.take();
                if let Some(data) = data {
                    return Some(Event {
                        event: event.unwrap_or_else(|| "message".into()),
                        data,
                    });
                }
                continue;
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                None => (line, String::new()),
            };
            match field.as_str() {
                "event" => self.event = Some(value),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(&value);
                    }
                    None => self.data = Some(value),
                },
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_pushes() {
        let mut p = Parser::default();
        p.push(b"event: data\ndata:[\"a\"");
        assert_eq!(p.next_event(), None);
        p.push(b"]\n\n: comment\nevent: control\r\ndata:{}\r\n\r\n");
        assert_eq!(p.next_event().unwrap().data, "[\"a\"]");
        let c = p.next_event().unwrap();
        assert_eq!((c.event.as_str(), c.data.as_str()), ("control", "{}"));
        assert_eq!(p.next_event(), None);
    }
}
