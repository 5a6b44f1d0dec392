//! A small etcd v3 gRPC client for the etcd backend: one lazily connected HTTP/2 channel
//! per member with the generated stubs of [`super::proto`] on top. It sends exactly the
//! requests the backend needs and reports failures as [`RpcError`], which keeps the gRPC
//! status so the backend can tell "never reached a member" from "outcome unknown".
//! Failover between members is the backend's job (`EtcdStore::call`), not this module's.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::mpsc;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};

use super::proto::etcdserverpb::kv_client::KvClient;
use super::proto::etcdserverpb::lease_client::LeaseClient;
use super::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use super::proto::etcdserverpb::watch_client::WatchClient;
use super::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    RangeRequest, RangeResponse, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
    WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
};

/// gRPC metadata etcd reads to refuse a request while the member has no leader (instead
/// of serving a stale read or holding the request until an election ends).
const REQUIRE_LEADER_KEY: &str = "hasleader";
const REQUIRE_LEADER_VALUE: &str = "true";

/// Requests queued on the sending side of a bidirectional stream (watch, keep-alive); we
/// only ever send one.
const STREAM_REQUESTS: usize = 4;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub(super) enum RpcError {
    /// The answer of a member, or the transport's (connection refused, timeout, reset),
    /// as a gRPC status.
    #[error("grpc request error: {0}")]
    Status(#[from] Status),
    /// Something the client refuses before sending (a malformed endpoint).
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// A stream (watch, keep-alive) ended or stalled before answering.
    #[error("stream error: {0}")]
    Stream(String),
    /// A keep-alive was answered with no time left: the lease no longer exists.
    #[error("lease not found")]
    LeaseNotFound,
}

/// How the channel to one member connects and times requests out.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ChannelSettings {
    /// Time allowed to open the TCP connection.
    pub connect_timeout: Option<Duration>,
    /// Time allowed for a request until its answer (for a stream: until its first answer).
    pub request_timeout: Option<Duration>,
    /// HTTP/2 ping interval and the time to wait for the ping's answer; pings are sent
    /// even while no request is open, so a dead member is noticed before it is used.
    pub keep_alive: Option<(Duration, Duration)>,
    /// Ask every member to refuse requests while it has no leader.
    pub require_leader: bool,
}

/// Adds the metadata every request carries.
#[derive(Debug, Clone)]
pub(super) struct RequestMetadata {
    require_leader: bool,
}

impl tonic::service::Interceptor for RequestMetadata {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if self.require_leader {
            request.metadata_mut().insert(
                REQUIRE_LEADER_KEY,
                AsciiMetadataValue::from_static(REQUIRE_LEADER_VALUE),
            );
        }
        Ok(request)
    }
}

type Service = InterceptedService<Channel, RequestMetadata>;

/// The client of one etcd member. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub(super) struct MemberClient {
    kv: KvClient<Service>,
    watch: WatchClient<Service>,
    lease: LeaseClient<Service>,
    maintenance: MaintenanceClient<Service>,
}

/// `http://host:port` for `host:port` or `http://host:port`; TLS is not built in.
fn endpoint_url(endpoint: &str) -> Result<String, RpcError> {
    if endpoint.starts_with("http://") {
        Ok(endpoint.to_string())
    } else if endpoint.starts_with("https://") {
        Err(RpcError::InvalidArgs(format!(
            "{endpoint}: https endpoints need TLS, which the etcd client does not support yet"
        )))
    } else {
        Ok(format!("http://{endpoint}"))
    }
}

impl MemberClient {
    /// A client for the member at `endpoint`. Nothing is sent yet: the connection is made
    /// by the first request (and remade after it breaks), so a member that is down now is
    /// not an error here. Must be called inside a tokio runtime.
    pub fn connect_lazy(
        endpoint: &str,
        settings: &ChannelSettings,
    ) -> Result<MemberClient, RpcError> {
        let url = endpoint_url(endpoint)?;
        let mut builder = Endpoint::from_shared(url)
            .map_err(|e| RpcError::InvalidArgs(format!("{endpoint}: {e}")))?;
        if let Some((interval, timeout)) = settings.keep_alive {
            builder = builder
                .keep_alive_while_idle(true)
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(timeout);
        }
        if let Some(timeout) = settings.request_timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(timeout) = settings.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        let service = InterceptedService::new(
            builder.connect_lazy(),
            RequestMetadata {
                require_leader: settings.require_leader,
            },
        );
        Ok(MemberClient {
            kv: KvClient::new(service.clone()),
            watch: WatchClient::new(service.clone()),
            lease: LeaseClient::new(service.clone()),
            maintenance: MaintenanceClient::new(service),
        })
    }

    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, RpcError> {
        Ok(self.kv.clone().range(request).await?.into_inner())
    }

    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, RpcError> {
        Ok(self.kv.clone().txn(request).await?.into_inner())
    }

    pub async fn compact(
        &self,
        request: CompactionRequest,
    ) -> Result<CompactionResponse, RpcError> {
        Ok(self.kv.clone().compact(request).await?.into_inner())
    }

    pub async fn lease_grant(
        &self,
        request: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, RpcError> {
        Ok(self.lease.clone().lease_grant(request).await?.into_inner())
    }

    pub async fn lease_revoke(
        &self,
        request: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, RpcError> {
        Ok(self.lease.clone().lease_revoke(request).await?.into_inner())
    }

    /// Restart the lease's TTL once: open a keep-alive stream, send one request, wait up to
    /// `timeout` for its answer. [`RpcError::LeaseNotFound`] when etcd answers that the
    /// lease has no time left.
    pub async fn lease_keep_alive_once(
        &self,
        id: i64,
        timeout: Duration,
    ) -> Result<LeaseKeepAliveResponse, RpcError> {
        let exchange = async {
            let (requests, stream) = request_stream();
            requests
                .send(LeaseKeepAliveRequest { id })
                .await
                .map_err(|_| RpcError::Stream("keep-alive request stream closed".into()))?;
            let mut responses = self
                .lease
                .clone()
                .lease_keep_alive(stream)
                .await?
                .into_inner();
            let answer = responses.message().await?;
            // Only now may the request side close (ending the stream).
            drop(requests);
            answer.ok_or_else(|| {
                RpcError::Stream("etcd closed the keep-alive stream without answering".into())
            })
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| RpcError::Stream("etcd did not answer the keep-alive in time".into()))??;
        if answer.ttl <= 0 {
            return Err(RpcError::LeaseNotFound);
        }
        Ok(answer)
    }

    pub async fn status(&self) -> Result<StatusResponse, RpcError> {
        Ok(self
            .maintenance
            .clone()
            .status(StatusRequest {})
            .await?
            .into_inner())
    }

    /// Open a watch stream and send `create` on it. The caller reads the confirmation
    /// (`created`) and then the events from the returned stream.
    pub async fn watch(&self, create: WatchCreateRequest) -> Result<WatchStream, RpcError> {
        let (requests, stream) = request_stream();
        requests
            .send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
            })
            .await
            .map_err(|_| RpcError::Stream("watch request stream closed".into()))?;
        let responses = self.watch.clone().watch(stream).await?.into_inner();
        Ok(WatchStream {
            _requests: requests,
            responses,
        })
    }
}

/// The answers of one watch. Dropping it ends the watch.
pub(super) struct WatchStream {
    /// Held so the request side stays open for as long as the watch is read.
    _requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl WatchStream {
    /// The next answer; `Ok(None)` when etcd closed the stream.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, RpcError> {
        Ok(self.responses.message().await?)
    }
}

/// The sending half of a bidirectional gRPC stream, as tonic wants it (a `Stream`).
struct RequestStream<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> Stream for RequestStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

fn request_stream<T>() -> (mpsc::Sender<T>, RequestStream<T>) {
    let (tx, rx) = mpsc::channel(STREAM_REQUESTS);
    (tx, RequestStream { rx })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_http_and_https_is_refused() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379").ok(),
            Some("http://127.0.0.1:2379".to_string())
        );
        assert_eq!(
            endpoint_url("http://[::1]:2379").ok(),
            Some("http://[::1]:2379".to_string())
        );
        assert!(matches!(
            endpoint_url("https://10.0.0.1:2379"),
            Err(RpcError::InvalidArgs(_))
        ));
    }
}
