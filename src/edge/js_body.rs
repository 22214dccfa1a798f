//! A runtime `Response` whose body is copied once, straight from Rust memory into a JavaScript
//! buffer. (`ResponseBuilder::fixed` wants an owned `Vec`, which for a shared cached page would
//! be one more copy of the page per answer.) It stays the runtime's object: a `worker::Response`
//! made from it reads its body and headers back, and turning that into the answer builds a second
//! JavaScript `Response` (the round trip was 5 % of a cache hit's CPU in a profile).

use worker::web_sys;

/// A response of `status` with `headers` and, when given, `body`.
pub fn response(status: u16, headers: web_sys::Headers, body: Option<&[u8]>) -> web_sys::Response {
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    let array = body.map(|bytes| {
        let array = js_sys::Uint8Array::new_with_length(bytes.len() as u32);
        array.copy_from(bytes);
        array
    });
    web_sys::Response::new_with_opt_buffer_source_and_init(array.as_ref().map(|a| a.as_ref()), &init)
        // Only a status outside 200–599 is refused: a bare 500 rather than a panic.
        .or_else(|_| {
            let init = web_sys::ResponseInit::new();
            init.set_status(500);
            web_sys::Response::new_with_opt_str_and_init(None, &init)
        })
        .expect("a 500 without a body is a valid response")
}
