//! A `worker::Response` whose body is copied once, straight from Rust memory into a JavaScript
//! buffer. (`ResponseBuilder::fixed` wants an owned `Vec`, which for a shared cached page would
//! be one more copy of the page per answer.)

use worker::web_sys;

/// A response of `status` with `headers` and, when given, `body`.
pub fn response(status: u16, headers: web_sys::Headers, body: Option<&[u8]>) -> worker::Response {
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    let array = body.map(|bytes| {
        let array = js_sys::Uint8Array::new_with_length(bytes.len() as u32);
        array.copy_from(bytes);
        array
    });
    match web_sys::Response::new_with_opt_buffer_source_and_init(array.as_ref().map(|a| a.as_ref()), &init) {
        Ok(response) => worker::Response::from(response),
        // Only a status outside 200–599 is refused: a bare 500 rather than a panic.
        Err(_) => worker::Response::builder().with_status(500).empty(),
    }
}
