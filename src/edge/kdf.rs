//! PBKDF2-HMAC-SHA256 through the runtime's Web Crypto (`crypto.subtle.deriveBits`): native code,
//! off the wasm's instruction stream, where 100 000 rounds in wasm cost 300–700 ms of the CPU
//! every other request of the isolate shares. The runtime refuses more than 100 000 rounds
//! (`MAX_WEB_CRYPTO_ITERATIONS`); a stored hash with more is checked in wasm, as before.

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::password::{self, StoredHash};

/// The most rounds workerd's PBKDF2 accepts.
pub const MAX_WEB_CRYPTO_ITERATIONS: u32 = 100_000;

fn get(target: &JsValue, name: &str) -> Result<JsValue, JsValue> {
    Reflect::get(target, &JsValue::from_str(name))
}

async fn call(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let function: Function = get(target, method)?.dyn_into()?;
    let promise: Promise = function.apply(target, &args.iter().collect::<Array>())?.dyn_into()?;
    JsFuture::from(promise).await
}

/// `len` bytes of PBKDF2-HMAC-SHA256 of `password` and `salt`.
pub async fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32, len: usize) -> Result<Vec<u8>, String> {
    let derive = async {
        let subtle = get(&get(&js_sys::global(), "crypto")?, "subtle")?;
        let usages: Array = [JsValue::from_str("deriveBits")].iter().collect();
        let key = call(
            &subtle,
            "importKey",
            &[
                "raw".into(),
                Uint8Array::from(password).into(),
                "PBKDF2".into(),
                JsValue::FALSE,
                usages.into(),
            ],
        )
        .await?;
        let params = Object::new();
        Reflect::set(&params, &"name".into(), &"PBKDF2".into())?;
        Reflect::set(&params, &"hash".into(), &"SHA-256".into())?;
        Reflect::set(&params, &"salt".into(), &Uint8Array::from(salt))?;
        Reflect::set(&params, &"iterations".into(), &JsValue::from(iterations))?;
        let bits = call(
            &subtle,
            "deriveBits",
            &[params.into(), key, JsValue::from((len * 8) as u32)],
        )
        .await?;
        Ok::<_, JsValue>(Uint8Array::new(&bits).to_vec())
    };
    derive.await.map_err(|e| format!("{e:?}"))
}

/// A secret (a password, a link's passphrase) against its stored hash: derived by the runtime's
/// Web Crypto (native code, not the isolate's wasm CPU) when the work factor is within what the
/// runtime accepts, else in wasm. A malformed stored hash never verifies.
pub async fn check_password(password: &str, stored: &str) -> bool {
    let Some(hash) = StoredHash::parse(stored) else {
        return false;
    };
    if hash.iterations > MAX_WEB_CRYPTO_ITERATIONS {
        return password::verify_password(password, stored);
    }
    match pbkdf2_sha256(password.as_bytes(), &hash.salt, hash.iterations, hash.expected.len()).await {
        Ok(derived) => hash.matches(&derived),
        Err(_) => password::verify_password(password, stored),
    }
}

/// A new stored hash of `secret` (`crate::password`'s format, the default work factor), derived
/// by the runtime's Web Crypto with a fresh 16-byte salt.
pub async fn hash_secret(secret: &str) -> Result<String, String> {
    let salt: [u8; 16] = crate::secure_random::bytes().map_err(|e| format!("randomness: {e}"))?;
    let derived = pbkdf2_sha256(secret.as_bytes(), &salt, password::DEFAULT_ITERATIONS, 32).await?;
    Ok(password::format_hash(password::DEFAULT_ITERATIONS, &salt, &derived))
}
