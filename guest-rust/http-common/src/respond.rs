//! Writing a response made of plain values.

use crate::bindings::wasi::http::types::{
    Fields, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// How much `blocking-write-and-flush` takes at once.
const MAX_WRITE: usize = 4096;

/// Answers with `status`, `headers` (in order) and `body`, written in blocking writes of
/// at most 4 KiB. A header the host refuses (a configured value with a control character,
/// say) leaves the request unanswered, which the host turns into a 500. Once the response
/// is set, a failed write only cuts the body short.
pub fn respond(
    response_out: ResponseOutparam,
    status: u16,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) {
    let Ok(headers) = Fields::from_list(headers) else {
        return;
    };
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.chunks(MAX_WRITE) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
