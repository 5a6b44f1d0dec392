//! The events stream (`GET /api/v1/events`) for Rust callers: the request, and a reader of
//! its Server-Sent Events frames.

use std::time::Duration;

use novacron_api_types::events::{Event, EventGap, EventKind};
use novacron_api_types::sse::{SseFrame, SseReader};
use reqwest::Method;

use crate::{Client, ClientError, api_error, error_chain};

/// Which events to ask for, and from where.
#[derive(Debug, Clone, Default)]
pub struct EventsRequest {
    pub project: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
    /// `vm/web1`, `node/n1`...
    pub resource: Option<String>,
    /// Resume after this event id (sent as `Last-Event-ID`); `Some("0")`: every retained
    /// event first; `None`: new events only.
    pub after: Option<String>,
    /// Keep the stream open for new events (else it ends after the retained ones).
    pub follow: bool,
}

/// One item of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Event(Event),
    /// Events after the position asked for are no longer retained.
    Gap(EventGap),
}

/// An open events stream.
pub struct EventStream {
    resp: reqwest::Response,
    url: String,
    reader: SseReader,
}

/// How long a following stream may stay open (the server sends a keep-alive every 15 s).
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30 * 86400);

impl Client {
    /// Opens the events stream.
    pub async fn events(&self, req: &EventsRequest) -> Result<EventStream, ClientError> {
        let mut query: Vec<(&str, String)> = vec![("follow", req.follow.to_string())];
        if let Some(p) = &req.project {
            query.push(("project", p.clone()));
        }
        if !req.kinds.is_empty() {
            let kinds: Vec<&str> = req.kinds.iter().map(|k| k.as_str()).collect();
            query.push(("kind", kinds.join(",")));
        }
        if let Some(r) = &req.resource {
            query.push(("resource", r.clone()));
        }
        let timeout = if req.follow {
            FOLLOW_TIMEOUT
        } else {
            Duration::from_secs(120)
        };
        let resp = self
            .send(
                Method::GET,
                "/events",
                |r| {
                    let r = r
                        .query(&query)
                        .header(reqwest::header::ACCEPT, "text/event-stream");
                    match &req.after {
                        Some(id) => r.header("Last-Event-ID", id),
                        None => r,
                    }
                },
                timeout,
            )
            .await?;
        let url = resp.url().to_string();
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(api_error(status, &body));
        }
        Ok(EventStream {
            resp,
            url,
            reader: SseReader::default(),
        })
    }
}

impl EventStream {
    /// The next event or gap notice; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<StreamItem>, ClientError> {
        loop {
            let frame = self
                .reader
                .next_frame()
                .map_err(|e| ClientError::Protocol {
                    url: self.url.clone(),
                    why: e.to_string(),
                })?;
            if let Some(frame) = frame {
                match parse_frame(&frame) {
                    Ok(Some(item)) => return Ok(Some(item)),
                    Ok(None) => continue,
                    Err(why) => {
                        return Err(ClientError::Protocol {
                            url: self.url.clone(),
                            why,
                        });
                    }
                }
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.reader.feed(&bytes),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        url: self.url.clone(),
                        why: error_chain(&e),
                    });
                }
            }
        }
    }
}

fn parse_frame(frame: &SseFrame) -> Result<Option<StreamItem>, String> {
    if frame.event == "gap" {
        return serde_json::from_str(&frame.data)
            .map(|g| Some(StreamItem::Gap(g)))
            .map_err(|e| format!("gap frame: {e}"));
    }
    serde_json::from_str(&frame.data)
        .map(|e| Some(StreamItem::Event(e)))
        .map_err(|e| format!("event frame: {e}"))
}
