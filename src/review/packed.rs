//! A value kept compressed while it waits: an open review item's decision
//! and signal, as zstd-compressed JSON.
//!
//! An item nobody answers is held for as long as it stays open, and a storm
//! nobody answers is 100,000s of them; as a tree of strings, maps and
//! vectors, a decision with its signal took 3.6 KB of heap; as JSON text
//! compressed with a dictionary, about 0.5 KB. The queue reads an item's decision only when
//! someone acts on it, a timer settles it, or a page of items is asked for,
//! and JSON is what the journal keeps anyway: every value the journal
//! writes reads back equal (its property test), so what is packed here
//! unpacks equal. Each kind of value has a dictionary (the first one
//! packed), and each thread its compressors.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// zstd's fastest level: a decision packs in a few microseconds.
const LEVEL: i32 = 1;

/// Why a value could not be packed or unpacked (not expected: the journal
/// writes and reads the same JSON).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PackError(String);

/// A value of type `T` as zstd-compressed JSON.
pub struct Packed<T> {
    bytes: Box<[u8]>,
    /// The JSON text's length, to unpack it in one allocation.
    len: usize,
    of: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Packed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} bytes of {})", self.bytes.len(), self.len)
    }
}

/// A zstd dictionary for one kind of value: the first value of that kind
/// packed, as JSON text. Its field names and usual values are what the
/// values that follow share, and a value of 1-2 KB packs to about half
/// what it does alone. Kept for the life of the process, in memory only:
/// nothing packed is ever written anywhere.
pub struct Dictionary(OnceLock<Box<[u8]>>);

impl Dictionary {
    pub const fn new() -> Dictionary {
        Dictionary(OnceLock::new())
    }
}

/// What can be packed, with the dictionary its kind shares.
pub trait Packable: Serialize + DeserializeOwned {
    fn dictionary() -> &'static Dictionary;
}

thread_local! {
    /// Each thread's compressors and decompressors, by dictionary.
    static COMPRESSORS: RefCell<Vec<(usize, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSORS: RefCell<Vec<(usize, zstd::bulk::Decompressor<'static>)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's `make`d context for `dictionary`.
fn with_context<C, R>(
    contexts: &'static std::thread::LocalKey<RefCell<Vec<(usize, C)>>>,
    dictionary: &'static [u8],
    make: impl FnOnce(&'static [u8]) -> std::io::Result<C>,
    f: impl FnOnce(&mut C) -> std::io::Result<R>,
) -> std::io::Result<R> {
    let key = dictionary.as_ptr() as usize;
    contexts.with_borrow_mut(|contexts| {
        let at = match contexts.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                contexts.push((key, make(dictionary)?));
                contexts.len() - 1
            }
        };
        f(&mut contexts[at].1)
    })
}

impl<T: Packable> Packed<T> {
    pub fn pack(value: &T) -> Result<Packed<T>, PackError> {
        let text = serde_json::to_vec(value).map_err(|e| PackError(e.to_string()))?;
        let dictionary: &'static [u8] = T::dictionary().0.get_or_init(|| text.clone().into());
        let bytes = with_context(
            &COMPRESSORS,
            dictionary,
            |d| zstd::bulk::Compressor::with_dictionary(LEVEL, d),
            |c| c.compress(&text),
        )
        .map_err(|e| PackError(e.to_string()))?;
        Ok(Packed {
            bytes: bytes.into_boxed_slice(),
            len: text.len(),
            of: PhantomData,
        })
    }

    pub fn unpack(&self) -> Result<T, PackError> {
        let dictionary: &'static [u8] = T::dictionary()
            .0
            .get()
            .ok_or_else(|| PackError("no dictionary: nothing was packed".into()))?;
        let text = with_context(
            &DECOMPRESSORS,
            dictionary,
            zstd::bulk::Decompressor::with_dictionary,
            |d| d.decompress(&self.bytes, self.len),
        )
        .map_err(|e| PackError(e.to_string()))?;
        serde_json::from_slice(&text).map_err(|e| PackError(e.to_string()))
    }

    /// The bytes it takes.
    #[cfg(test)]
    fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// A value held packed, or whole if it could not be (not expected; said
/// when it happens): nothing is dropped for failing to pack.
#[derive(Debug)]
pub enum Held<T> {
    Packed(Packed<T>),
    Whole(Arc<T>),
}

impl<T: Packable> Held<T> {
    /// Packs `value`, and keeps the pack only if it unpacks: what is held
    /// can always be read back.
    pub fn new(value: Arc<T>) -> Held<T> {
        match Packed::pack(&*value).and_then(|p| p.unpack().map(|_| p)) {
            Ok(packed) => Held::Packed(packed),
            Err(error) => {
                tracing::warn!(%error, "a value could not be packed; it is held whole");
                Held::Whole(value)
            }
        }
    }

    pub fn get(&self) -> Result<Arc<T>, PackError> {
        match self {
            Held::Packed(packed) => packed.unpack().map(Arc::new),
            Held::Whole(value) => Ok(Arc::clone(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{decision, signal};

    impl Packable for serde_json::Value {
        fn dictionary() -> &'static Dictionary {
            static VALUES: Dictionary = Dictionary::new();
            &VALUES
        }
    }

    #[test]
    fn a_decision_and_its_signal_unpack_equal_and_smaller_than_their_text() {
        let s = signal(
            0,
            "alert.firing",
            "service/svc0",
            serde_json::json!({"alertname": "Latency", "summary": "p99 latency above 2 s"}),
        );
        let d = decision(
            1,
            &s,
            &[("page_oncall", 0.5), ("acknowledge", 0.5)],
            "review",
            "operator",
        );
        let (pd, ps) = (Packed::pack(&d).unwrap(), Packed::pack(&s).unwrap());
        assert_eq!(pd.unpack().unwrap(), d);
        assert_eq!(ps.unpack().unwrap(), s);
        let text = serde_json::to_vec(&d).unwrap().len();
        assert!(pd.size() < text, "{} of {text}", pd.size());
    }

    #[test]
    fn bytes_that_are_not_a_pack_are_an_error_not_a_panic() {
        let mut p = Packed::pack(&serde_json::json!({"a": 1})).unwrap();
        p.bytes = vec![1, 2, 3].into_boxed_slice();
        assert!(p.unpack().is_err());
    }
}
