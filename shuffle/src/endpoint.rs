//! The one gRPC endpoint each process serves: Arrow Flight, whose `do_get` streams batches
//! (shuffle partitions from workers, query results from the coordinator) and whose
//! `do_action` carries control messages. Requests without the cluster's token are refused
//! before they reach the handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult,
};
use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::{self, BoxStream};
use tonic::metadata::MetadataValue;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Result, ShuffleError};
use crate::messages::Ticket;
use crate::security::Security;

/// Batches streamed in answer to a ticket.
pub type ResultStream = BoxStream<'static, Result<RecordBatch>>;

/// What a process does with the requests its endpoint receives.
#[tonic::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Answers the control message `name` with body `body` (JSON).
    async fn action(&self, name: &str, body: Bytes) -> Result<Vec<u8>>;
    /// The schema and batches `ticket` asks for.
    async fn stream(&self, ticket: Ticket) -> Result<(SchemaRef, ResultStream)>;
}

/// Serves `handler` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handler: Arc<dyn Handler>,
    security: &Security,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let expected = security
        .bearer()
        .map(|bearer| {
            MetadataValue::try_from(bearer.as_str())
                .map_err(|_| ShuffleError::Invalid("the token must be printable ASCII".into()))
        })
        .transpose()?;
    let authenticate = move |request: Request<()>| -> std::result::Result<Request<()>, Status> {
        match &expected {
            None => Ok(request),
            Some(expected) if request.metadata().get("authorization") == Some(expected) => {
                Ok(request)
            }
            Some(_) => Err(Status::unauthenticated(
                "missing or wrong cluster token (pass the same --token to every process)",
            )),
        }
    };
    let service = FlightServiceServer::with_interceptor(FlightEndpoint { handler }, authenticate);
    let mut builder = Server::builder();
    if let Some(tls) = security.server_tls()? {
        builder = builder
            .tls_config(tls)
            .map_err(|error| ShuffleError::Invalid(format!("bad TLS configuration: {error}")))?;
    }
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|error| ShuffleError::Invalid(format!("the endpoint stopped: {error}")))
}

struct FlightEndpoint {
    handler: Arc<dyn Handler>,
}

type Reply<T> = std::result::Result<Response<T>, Status>;
type Boxed<T> = Pin<Box<dyn futures::Stream<Item = std::result::Result<T, Status>> + Send>>;

fn status_of(error: ShuffleError) -> Status {
    match error {
        ShuffleError::Invalid(message) => Status::invalid_argument(message),
        ShuffleError::MissingOutput { .. } => Status::not_found(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl FlightService for FlightEndpoint {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoExchangeStream = Boxed<FlightData>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;

    async fn do_get(&self, request: Request<arrow_flight::Ticket>) -> Reply<Self::DoGetStream> {
        let ticket: Ticket = serde_json::from_slice(&request.into_inner().ticket)
            .map_err(|error| Status::invalid_argument(format!("unreadable ticket: {error}")))?;
        let (schema, batches) = self.handler.stream(ticket).await.map_err(status_of)?;
        let batches = batches.map_err(|error| FlightError::ExternalError(Box::new(error)));
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(|error| match error {
                FlightError::Tonic(status) => *status,
                other => Status::internal(other.to_string()),
            });
        Ok(Response::new(Box::pin(encoded)))
    }

    async fn do_action(&self, request: Request<Action>) -> Reply<Self::DoActionStream> {
        let action = request.into_inner();
        let body = self
            .handler
            .action(&action.r#type, action.body)
            .await
            .map_err(status_of)?;
        let reply = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(stream::once(async { Ok(reply) }))))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Reply<Self::HandshakeStream> {
        Err(Status::unimplemented(
            "handshake: send the token as a bearer token",
        ))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Reply<Self::ListFlightsStream> {
        Err(Status::unimplemented("list_flights"))
    }

    async fn get_flight_info(&self, _request: Request<FlightDescriptor>) -> Reply<FlightInfo> {
        Err(Status::unimplemented("get_flight_info"))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Reply<PollInfo> {
        Err(Status::unimplemented("poll_flight_info"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> Reply<SchemaResult> {
        Err(Status::unimplemented("get_schema"))
    }

    async fn do_put(&self, _request: Request<Streaming<FlightData>>) -> Reply<Self::DoPutStream> {
        Err(Status::unimplemented("do_put"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Reply<Self::DoExchangeStream> {
        Err(Status::unimplemented("do_exchange"))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Reply<Self::ListActionsStream> {
        Ok(Response::new(Box::pin(stream::empty())))
    }
}
