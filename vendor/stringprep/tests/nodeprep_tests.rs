// Examples from http://josefsson.org/idn.php
extern crate stringprep;
// Patched: the same tests run on wasm32 (node, wasm-bindgen-test-runner), where NFKC is JavaScript's.
#[cfg(target_arch = "wasm32")]
extern crate wasm_bindgen_test;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use stringprep::nodeprep;

#[test]
fn test_nodeprep() {
    assert_eq!(
        "räksmörgås.josefsson.org",
        nodeprep("räksmörgås.josefßon.org").unwrap()
    );
}
