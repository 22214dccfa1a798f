//! The Rate Limiting binding (`[[ratelimits]]`), called the cheap way. Every share page is
//! counted, so this call is on the hottest path there is: a small JavaScript helper makes the
//! options object and reads `success`, and the answer comes back through one callback made
//! once per isolate into a slot table, instead of a `JsFuture` (two closures and two finalizer
//! registrations per call) around workers-rs' `RateLimiter` (serde both ways and a type check
//! by constructor name per call).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use wasm_bindgen::prelude::*;
use worker::Env;

#[wasm_bindgen(inline_js = r#"
export function count(env, binding, key, slot, done) {
  try {
    env[binding].limit({ key }).then(
      (outcome) =>
        done(slot, typeof outcome?.success === "boolean" ? outcome.success : "the outcome has no boolean `success`"),
      (error) => done(slot, String(error)),
    );
    return undefined;
  } catch (error) {
    return String(error);
  }
}
"#)]
extern "C" {
    /// Starts one count; a synchronous failure (no such binding) comes back as its message.
    fn count(env: &JsValue, binding: &JsValue, key: &str, slot: u32, done: &JsValue) -> Option<String>;
}

enum Slot {
    Free,
    Waiting(Option<Waker>),
    Done(Result<bool, String>),
    /// The future was dropped before the answer came: the callback frees the slot.
    Abandoned,
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// `binding name → its JavaScript string`, made once.
    names: Vec<(&'static str, JsValue)>,
}

thread_local! {
    static TABLE: RefCell<Table> = const {
        RefCell::new(Table { slots: Vec::new(), free: Vec::new(), names: Vec::new() })
    };
    /// The one callback every count answers through.
    static DONE: JsValue = Closure::<dyn Fn(u32, JsValue)>::new(answered).into_js_value();
}

fn answered(slot: u32, outcome: JsValue) {
    let result = outcome.as_bool().ok_or_else(|| outcome.as_string().unwrap_or_default());
    let waker = TABLE.with(|t| {
        let mut table = t.borrow_mut();
        let index = slot as usize;
        match std::mem::replace(&mut table.slots[index], Slot::Free) {
            Slot::Waiting(waker) => {
                table.slots[index] = Slot::Done(result);
                waker
            }
            Slot::Abandoned => {
                table.free.push(slot);
                None
            }
            other => {
                table.slots[index] = other;
                None
            }
        }
    });
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// One count against `binding` for `key`: `Ok(true)` while under the limit; `Err` when the
/// binding is missing or failed.
pub async fn limit(env: &Env, binding: &'static str, key: &str) -> Result<bool, String> {
    let slot = TABLE.with(|t| {
        let mut table = t.borrow_mut();
        let slot = match table.free.pop() {
            Some(slot) => slot,
            None => {
                table.slots.push(Slot::Free);
                (table.slots.len() - 1) as u32
            }
        };
        let name = match table.names.iter().position(|(n, _)| *n == binding) {
            Some(index) => index,
            None => {
                table.names.push((binding, JsValue::from_str(binding)));
                table.names.len() - 1
            }
        };
        // The answer always comes in a later microtask, so the table may stay borrowed here.
        match DONE.with(|done| count(env, &table.names[name].1, key, slot, done)) {
            None => {
                table.slots[slot as usize] = Slot::Waiting(None);
                Ok(slot)
            }
            Some(error) => {
                table.free.push(slot);
                Err(format!("{binding}: {error}"))
            }
        }
    })?;
    Counted { slot, finished: false }
        .await
        .map_err(|error| format!("{binding}: {error}"))
}

struct Counted {
    slot: u32,
    finished: bool,
}

impl Future for Counted {
    type Output = Result<bool, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.slot;
        let ready = TABLE.with(|t| {
            let mut table = t.borrow_mut();
            let entry = &mut table.slots[slot as usize];
            match std::mem::replace(entry, Slot::Free) {
                Slot::Done(result) => {
                    table.free.push(slot);
                    Some(result)
                }
                _ => {
                    *entry = Slot::Waiting(Some(cx.waker().clone()));
                    None
                }
            }
        });
        match ready {
            Some(result) => {
                self.finished = true;
                Poll::Ready(result)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.finished {
            TABLE.with(|t| {
                let mut table = t.borrow_mut();
                let entry = &mut table.slots[self.slot as usize];
                if matches!(entry, Slot::Done(_)) {
                    *entry = Slot::Free;
                    table.free.push(self.slot);
                } else {
                    *entry = Slot::Abandoned;
                }
            });
        }
    }
}
