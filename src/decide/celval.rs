//! CEL values that read signalbox's own data in place.
//!
//! Binding a variable with `cel::Context::add_variable_from_value` copies it
//! twice per evaluation: into a `cel::Value`, then into the interpreter's
//! `Val`s. A decision evaluates the policy over the signal (whose data can
//! be large free text), the context view and every candidate option, so the
//! copies cost more than the rules. The values here wrap what the engine
//! already holds and convert a field only when an expression reads it, as
//! the `cel` crate documents for large backing objects
//! (`Context::add_variable_as_val` with `Indexer`, `Iterable`, `Sizer`).
//!
//! JSON maps as `cel::to_value` maps it (objects are maps with string keys,
//! arrays are lists, null is `null`) except for integers: an integer that
//! fits i64 is an `int` (`cel::to_value` makes every non-negative one a
//! `uint`, so `signal.data.count + 1` would be a type error), a larger one a
//! `uint`, anything else a `double`.

use std::sync::OnceLock;

use cel::ExecutionError;
use cel::common::traits::{Container, Indexer, Iterable, Iterator as CelIterator, Sizer, Zeroer};
use cel::common::types::{self, CelBool, CelDouble, CelInt, CelNull, CelString, CelUInt, Type};
use cel::common::value::{CowVal, Val};
use serde_json::{Map, Value};

use crate::signal::Signal;

/// A JSON object or array, read lazily.
#[derive(Debug)]
pub struct Json<'a> {
    node: Node<'a>,
    /// Keys (of an object) or elements (of an array), converted the first
    /// time an expression iterates or searches them.
    items: OnceLock<Vec<Box<dyn Val + 'a>>>,
}

#[derive(Debug, Clone, Copy)]
enum Node<'a> {
    Object(&'a Map<String, Value>),
    /// An object and a field or two more, held apart from it.
    Extended {
        base: &'a Map<String, Value>,
        apart: Apart<'a>,
    },
    Array(&'a [Value]),
    /// A signal as policies see it: id, type, source, subject, severity,
    /// data (any JSON value), its content type and the extension
    /// attributes, with the subject of the choice at hand.
    Signal {
        signal: &'a Signal,
        subject: &'a str,
    },
}

/// The fields of `signal` as policies (and step templates' `carries`)
/// read it.
pub const SIGNAL_FIELDS: [&str; 8] = [
    "id",
    "type",
    "source",
    "subject",
    "severity",
    "data",
    "datacontenttype",
    "extensions",
];

impl<'a> Json<'a> {
    fn new(node: Node<'a>) -> Json<'a> {
        Json {
            node,
            items: OnceLock::new(),
        }
    }

    pub fn object(map: &'a Map<String, Value>) -> Json<'a> {
        Json::new(Node::Object(map))
    }

    pub fn signal(signal: &'a Signal, subject: &'a str) -> Json<'a> {
        Json::new(Node::Signal { signal, subject })
    }

    fn items(&self) -> &[Box<dyn Val + 'a>] {
        self.items.get_or_init(|| match self.node {
            Node::Object(map) => map
                .keys()
                .map(|k| Box::new(CelString::from(k.as_str())) as Box<dyn Val + 'a>)
                .collect(),
            Node::Array(items) => items.iter().map(value).collect(),
            Node::Extended { base, apart } => {
                // In order, as the keys of one JSON object would be.
                let mut keys: Vec<&str> = base.keys().map(String::as_str).collect();
                for (key, _) in apart.iter().flatten() {
                    if let Err(at) = keys.binary_search(key) {
                        keys.insert(at, key);
                    }
                }
                keys.into_iter()
                    .map(|k| Box::new(CelString::from(k)) as Box<dyn Val + 'a>)
                    .collect()
            }
            Node::Signal { .. } => SIGNAL_FIELDS
                .iter()
                .map(|k| Box::new(CelString::from(*k)) as Box<dyn Val + 'a>)
                .collect(),
        })
    }

    fn len(&self) -> usize {
        match self.node {
            Node::Object(map) => map.len(),
            Node::Extended { base, apart } => {
                let added = apart.iter().flatten();
                base.len() + added.filter(|(key, _)| !base.contains_key(*key)).count()
            }
            Node::Array(items) => items.len(),
            Node::Signal { .. } => SIGNAL_FIELDS.len(),
        }
    }

    /// The value under a key of an object-like node.
    fn field(&self, name: &str) -> Option<Box<dyn Val + 'a>> {
        match self.node {
            Node::Object(map) => map.get(name).map(value),
            Node::Extended { base, apart } => match held_apart(&apart, name) {
                Some(v) => Some(value(v)),
                None => base.get(name).map(value),
            },
            Node::Array(_) => None,
            Node::Signal { signal, subject } => Some(match name {
                "id" => Box::new(CelString::from(signal.id.as_str())),
                "type" => Box::new(CelString::from(signal.kind.as_str())),
                "source" => Box::new(CelString::from(signal.source.as_str())),
                "subject" => Box::new(CelString::from(subject)),
                "severity" => match signal.severity {
                    Some(s) => Box::new(CelString::from(s.as_str())),
                    None => Box::new(CelNull),
                },
                "data" => value(&signal.data),
                "datacontenttype" => match &signal.datacontenttype {
                    Some(ct) => Box::new(CelString::from(ct.as_str())),
                    None => Box::new(CelNull),
                },
                "extensions" => Box::new(Json::object(&signal.extensions)),
                _ => return None,
            }),
        }
    }
}

/// The `context` a policy evaluates over: a JSON object, and up to
/// `HELD_APART` fields more held apart from it (the services' health and the
/// recent changes, which the engine keeps ready, each shared by many
/// decisions, instead of copying them into every decision's view).
#[derive(Debug, Clone, Copy)]
pub struct ContextView<'a> {
    base: &'a Value,
    apart: Apart<'a>,
}

/// How many fields a `ContextView` holds apart from its base, at most.
const HELD_APART: usize = 2;

/// The fields a `ContextView` holds apart, by name.
type Apart<'a> = [Option<(&'a str, &'a Value)>; HELD_APART];

/// The field `name` of those held apart, if it is one.
fn held_apart<'a>(apart: &Apart<'a>, name: &str) -> Option<&'a Value> {
    apart
        .iter()
        .flatten()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| *value)
}

impl<'a> ContextView<'a> {
    pub fn new(base: &'a Value) -> ContextView<'a> {
        ContextView {
            base,
            apart: [None; HELD_APART],
        }
    }

    /// The view with `key` read from `value` (in place of any `key` of the
    /// base, or of one held apart before). Past `HELD_APART` fields, the
    /// last one held apart gives way to it.
    pub fn with(mut self, key: &'a str, value: &'a Value) -> ContextView<'a> {
        let slot = self
            .apart
            .iter()
            .position(|held| held.is_none_or(|(k, _)| k == key))
            .unwrap_or(HELD_APART - 1);
        self.apart[slot] = Some((key, value));
        self
    }

    /// One field, as `context.<field>` reads it.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        held_apart(&self.apart, field).or_else(|| self.base.get(field))
    }

    /// The view as the CEL value `context`. (A base that is not an object
    /// has no fields to add to: it is itself.)
    pub fn as_val(&self) -> Box<dyn Val + 'a> {
        match self.base {
            Value::Object(base) if self.apart.iter().any(Option::is_some) => {
                Box::new(Json::new(Node::Extended {
                    base,
                    apart: self.apart,
                }))
            }
            base => self::value(base),
        }
    }
}

/// Any JSON value as a CEL value: scalars converted now, objects and arrays
/// wrapped.
pub fn value(v: &Value) -> Box<dyn Val + '_> {
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => Box::new(Json::new(Node::Array(items))),
        Value::Object(map) => Box::new(Json::object(map)),
    }
}

fn no_such_key(key: &dyn Val) -> ExecutionError {
    let name = if let Some(s) = key.downcast_ref::<CelString>() {
        s.inner().to_string()
    } else if let Some(i) = key.downcast_ref::<CelInt>() {
        i.inner().to_string()
    } else if let Some(u) = key.downcast_ref::<CelUInt>() {
        u.inner().to_string()
    } else {
        String::new()
    };
    ExecutionError::NoSuchKey(std::sync::Arc::new(name))
}

/// A list index as the spec allows it: an int, a uint, or a double with no
/// fractional part.
fn list_index(key: &dyn Val) -> Option<i64> {
    if let Some(i) = key.downcast_ref::<CelInt>() {
        Some(*i.inner())
    } else if let Some(u) = key.downcast_ref::<CelUInt>() {
        i64::try_from(*u.inner()).ok()
    } else if let Some(d) = key.downcast_ref::<CelDouble>() {
        let d = *d.inner();
        (d.fract() == 0.0 && d.abs() < 9.0e15).then_some(d as i64)
    } else {
        None
    }
}

fn is_map_key(key: &dyn Val) -> bool {
    key.downcast_ref::<CelString>().is_some()
        || key.downcast_ref::<CelInt>().is_some()
        || key.downcast_ref::<CelUInt>().is_some()
        || key.downcast_ref::<CelBool>().is_some()
}

impl<'a> Val for Json<'a> {
    fn get_type(&self) -> &Type {
        match self.node {
            Node::Object(_) | Node::Extended { .. } | Node::Signal { .. } => &types::MAP_TYPE,
            Node::Array(_) => &types::LIST_TYPE,
        }
    }

    fn cel_type() -> &'static Type
    where
        Self: Sized,
    {
        // Objects and arrays differ: callers use `get_type` on a value.
        &types::DYN_TYPE
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(self)
    }

    /// Structural, through `other`'s own indexer, so it holds against the
    /// built-in maps and lists as well as against another `Json`. (The
    /// built-in containers compare only with their own kind, so a literal on
    /// the left of `==` does not equal a `Json` on the right.)
    fn equals(&self, other: &dyn Val) -> bool {
        if other.get_type().kind() != self.get_type().kind()
            || other.as_sizer().map(|s| *s.size().inner()) != Some(self.len() as i64)
        {
            return false;
        }
        let Some(theirs) = other.as_indexer() else {
            return false;
        };
        let same = |key: &dyn Val, mine: Option<Box<dyn Val + 'a>>| {
            mine.is_some_and(|mine| theirs.get(key).is_ok_and(|v| mine.equals(v.as_ref())))
        };
        match self.node {
            Node::Array(items) => items
                .iter()
                .enumerate()
                .all(|(i, v)| same(&CelInt::from(i as i64), Some(value(v)))),
            _ => self.items().iter().all(|key| {
                let name = key
                    .downcast_ref::<CelString>()
                    .map(|k| k.inner().to_string());
                same(key.as_ref(), name.and_then(|n| self.field(&n)))
            }),
        }
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(Json::new(self.node))
    }
}

impl<'a> Container for Json<'a> {
    fn contains(&self, key: &dyn Val) -> Result<bool, ExecutionError> {
        match self.node {
            Node::Object(_) | Node::Extended { .. } | Node::Signal { .. } => {
                match key.downcast_ref::<CelString>() {
                    Some(s) => Ok(self.field(s.inner()).is_some()),
                    None if is_map_key(key) => Ok(false),
                    None => Err(ExecutionError::UnexpectedType {
                        got: key.get_type().name().to_owned(),
                        want: "map key".to_owned(),
                    }),
                }
            }
            Node::Array(_) => Ok(self.items().iter().any(|v| v.equals(key))),
        }
    }
}

impl<'a> Indexer for Json<'a> {
    fn get<'b, 'v>(&'b self, key: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match self.node {
            Node::Object(_) | Node::Extended { .. } | Node::Signal { .. } => {
                match key.downcast_ref::<CelString>() {
                    Some(s) => self
                        .field(s.inner())
                        .map(CowVal::Owned)
                        .ok_or_else(|| no_such_key(key)),
                    None if is_map_key(key) => Err(no_such_key(key)),
                    None => Err(ExecutionError::UnexpectedType {
                        got: key.get_type().name().to_owned(),
                        want: "map key".to_owned(),
                    }),
                }
            }
            Node::Array(items) => match list_index(key) {
                Some(i) => match usize::try_from(i).ok().and_then(|i| items.get(i)) {
                    Some(v) => Ok(CowVal::Owned(value(v))),
                    None => Err(ExecutionError::IndexOutOfBounds(cel::Value::Int(i))),
                },
                None => Err(ExecutionError::UnexpectedType {
                    got: key.get_type().name().to_owned(),
                    want: "int".to_owned(),
                }),
            },
        }
    }

    fn steal<'v>(self: Box<Self>, key: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        // Only the built-in containers are asked to give up an element; a
        // copy is right for anything else.
        self.get(key).map(CowVal::into_owned)
    }
}

struct Items<'b, 'a> {
    items: std::slice::Iter<'b, Box<dyn Val + 'a>>,
}

impl<'b, 'v, 'a: 'v> CelIterator<'b, 'v> for Items<'b, 'a> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        self.items.next().map(|v| v.as_ref() as &(dyn Val + 'v))
    }
}

impl<'a> Iterable for Json<'a> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Items {
            items: self.items().iter(),
        })
    }
}

impl Sizer for Json<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.len() as i64)
    }
}

impl Zeroer for Json<'_> {
    fn is_zero_value(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    /// Evaluates `expr` with `data` bound lazily and, for comparison, the
    /// way the crate binds values itself.
    fn both(expr: &str, data: &Value) -> (Result<cel::Value, String>, Result<cel::Value, String>) {
        let env = Arc::new(cel::Env::stdlib());
        let program = env.compile(expr).expect("test expression compiles");
        let Value::Object(map) = data else {
            panic!("test data is an object")
        };
        let mut lazy = cel::Context::with_env(Arc::clone(&env));
        lazy.add_variable_as_val("d", Box::new(Json::object(map)));
        let mut eager = cel::Context::with_env(Arc::clone(&env));
        eager.add_variable_from_value("d", cel::to_value(data.clone()).expect("converts"));
        (
            program.execute(&lazy).map_err(|e| e.to_string()),
            program.execute(&eager).map_err(|e| e.to_string()),
        )
    }

    #[test]
    fn an_extended_object_reads_as_the_whole_one() {
        // The policy view: fields of the decision, and `services` and
        // `changes` held apart.
        let whole = json!({
            "tier": "gold", "business_hours": true, "order": null,
            "services": {"payments": "down", "email": "up"},
            "changes": [{"summary": "deploy", "service": "payments"}],
        });
        let mut fields = whole.clone();
        let mut apart = |key| {
            fields
                .as_object_mut()
                .and_then(|m| m.remove(key))
                .expect("test data has the field")
        };
        let (services, changes) = (apart("services"), apart("changes"));
        let env = Arc::new(cel::Env::stdlib());
        let stale = json!("replaced");
        let view = ContextView::new(&fields)
            .with("services", &stale)
            .with("changes", &changes)
            .with("services", &services);
        assert_eq!(view.get("services"), Some(&services));
        assert_eq!(view.get("changes"), Some(&changes));
        assert_eq!(view.get("tier"), whole.get("tier"));
        assert_eq!(view.get("missing"), None);
        for expr in [
            "context.services['payments'] == 'down' && context.tier == 'gold'",
            "has(context.services) && has(context.changes) && !has(context.missing)",
            "'services' in context && 'changes' in context && size(context) == 5",
            "context.map(k, k) == ['business_hours', 'changes', 'order', 'services', 'tier']",
            "context == {'tier': 'gold', 'business_hours': true, 'order': null, \
             'services': {'payments': 'down', 'email': 'up'}, \
             'changes': [{'summary': 'deploy', 'service': 'payments'}]}",
            "context.services.exists(s, context.services[s] == 'down')",
            "context.changes.exists(c, c.service == 'payments')",
            "context.missing == 1",
        ] {
            let program = env.compile(expr).expect("test expression compiles");
            let mut extended = cel::Context::with_env(Arc::clone(&env));
            extended.add_variable_as_val("context", view.as_val());
            let mut plain = cel::Context::with_env(Arc::clone(&env));
            plain.add_variable_as_val("context", value(&whole));
            let (e, p) = (
                program.execute(&extended).map_err(|e| e.to_string()),
                program.execute(&plain).map_err(|e| e.to_string()),
            );
            assert_eq!(e, p, "{expr}");
            if !expr.contains("missing ==") {
                assert_eq!(e, Ok(cel::Value::Bool(true)), "{expr}");
            }
        }
    }

    #[test]
    fn lazy_json_evaluates_as_the_eager_conversion() {
        let data = json!({
            "amount": 12500.5, "count": 3, "big": 18446744073709551615u64,
            "name": "acme", "tags": ["a", "b"], "none": null, "ok": true,
            "nested": {"health": {"payments": "down", "email": "up"}},
            "items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 0}],
        });
        for expr in [
            "has(d.amount) && double(d.amount) > 10000.0",
            "has(d.missing)",
            "d.count == 3",
            "d.big == 18446744073709551615u",
            "d.name == 'acme' && d.name.startsWith('ac')",
            "'a' in d.tags && !('z' in d.tags)",
            "size(d.tags) == 2 && d.tags[1] == 'b'",
            "d.none == null",
            "d.ok",
            "'payments' in d.nested.health && d.nested.health['payments'] == 'down'",
            "d.nested.health.exists(s, d.nested.health[s] == 'down')",
            "d.nested.health.all(s, s in ['payments', 'email'])",
            "d.items.exists(i, i.sku == 'y' && i.qty == 0)",
            "d.items.map(i, i.qty).size() == 2",
            "d.tags == ['a', 'b']",
            "d.nested.health == {'payments': 'down', 'email': 'up'}",
            "d.nested == d.nested && d.tags != d.items",
            "size(d) == 9",
            "d.tags[5] == 'x'",
            "d.missing == 1",
            "d.name > 1",
        ] {
            let (lazy, eager) = both(expr, &data);
            assert_eq!(lazy.is_ok(), eager.is_ok(), "{expr}: {lazy:?} vs {eager:?}");
            if let (Ok(l), Ok(e)) = (&lazy, &eager) {
                assert_eq!(l, e, "{expr}");
            }
        }
        // Where the eager conversion makes every non-negative integer a
        // uint (so `d.count + 1` is a type error), JSON integers are ints.
        let (lazy, eager) = both("d.count + 1 == 4 && d.count - 4 == -1", &data);
        assert_eq!(lazy, Ok(cel::Value::Bool(true)));
        assert!(eager.is_err());
    }
}
