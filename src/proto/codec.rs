//! The gRPC codec of the management service: prost's, except that a request that does not
//! decode is INVALID_ARGUMENT with our error detail (tonic answers INTERNAL). Beside it, how
//! an error goes on the wire: a status whose details carry a `zitadel.v1.ErrorDetail`.
use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Code, Status,
    codec::{BufferSettings, DecodeBuf, Decoder},
};
use tonic_prost::ProstEncoder;

use crate::{
    error::Error,
    proto::{google::rpc, zitadel::v1::ErrorDetail},
};

/// The type URL of the error detail every answer with an error id carries.
pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";

/// A status with `code`, the client's message of `e` (`"<message> (<ID>)"`) and, when `e`
/// has an id, a `zitadel.v1.ErrorDetail` packed in the `google.rpc.Status` of
/// `grpc-status-details-bin`.
pub fn detailed_status(code: Code, e: &Error) -> Status {
    let message = e.client_message();
    let details = if e.id.is_empty() {
        Vec::new()
    } else {
        let detail = ErrorDetail {
            id: e.id.to_owned(),
            message: e.message.to_string(),
        };
        vec![pbjson_types::Any {
            type_url: ERROR_DETAIL_TYPE.to_owned(),
            value: detail.encode_to_vec().into(),
        }]
    };
    let status = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details,
    };
    Status::with_details(code, message, status.encode_to_vec().into())
}

#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(PhantomData)
    }
}

#[derive(Debug, Clone)]
pub struct StrictDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            detailed_status(
                Code::InvalidArgument,
                &Error::invalid_argument(
                    "GRPC-Dec01",
                    format!("the request is not a valid protobuf message: {e}"),
                ),
            )
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
