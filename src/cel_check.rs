//! Type-checking CEL against what it reads, before it runs.
//!
//! A CEL program compiles without knowing its variables, so a rule that
//! reads `contxt.tier`, `context.tiers` or a `signal.data` field its type
//! never carries compiles, loads, and then fails (taken at its strictest)
//! or never fires, silently. `check` walks a compiled expression with the
//! shapes it will be given: `signal` (its attributes, and `data` as the
//! signal type declares it, `playbook::fields`), `context` (the fields of
//! `Context::policy_view`), `option` for option-scoped rules, and the
//! comprehension variables it binds itself. It reports unknown variables,
//! fields a closed shape does not have, operators and functions applied to
//! the wrong types (`context.tier > 3`), and a rule whose result is not a
//! boolean. Policies (`decide::policy`) and a signal type's context
//! updates (`playbook::fold`) are both checked with it. What it cannot know (a type that declares no fields, values of
//! `any` type, extensions) is `dyn` and passes. Pure: no IO.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr, LiteralValue, operators};

use crate::signal::fields::{FieldType, Fields};

/// A value's type, as far as the checker knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// Unknown until run time: anything goes.
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    /// A JSON number: int or double.
    Number,
    String,
    Bytes,
    List(Box<Ty>),
    /// String-keyed, every value of one type.
    Map(Box<Ty>),
    /// A record with named fields (closed: no others).
    Record(Arc<Record>),
}

/// A record's fields, and what it is called in messages.
#[derive(Debug, PartialEq)]
pub struct Record {
    pub name: &'static str,
    pub fields: BTreeMap<String, Ty>,
}

impl Ty {
    fn name(&self) -> String {
        match self {
            Ty::Dyn => "dyn".into(),
            Ty::Null => "null".into(),
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Double => "double".into(),
            Ty::Number => "number".into(),
            Ty::String => "string".into(),
            Ty::Bytes => "bytes".into(),
            Ty::List(t) => format!("list({})", t.name()),
            Ty::Map(t) => format!("map(string, {})", t.name()),
            Ty::Record(r) => r.name.into(),
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double | Ty::Number)
    }

    fn known(&self) -> bool {
        !matches!(self, Ty::Dyn | Ty::Null)
    }

    /// Whether values of the two types can ever be compared equal.
    fn comparable(&self, other: &Ty) -> bool {
        if !self.known() || !other.known() {
            return true;
        }
        match (self, other) {
            (a, b) if a.numeric() && b.numeric() => true,
            (Ty::List(_), Ty::List(_)) => true,
            (Ty::Map(_) | Ty::Record(_), Ty::Map(_) | Ty::Record(_)) => true,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }

    fn of_field(kind: FieldType) -> Ty {
        match kind {
            FieldType::String => Ty::String,
            FieldType::Int => Ty::Int,
            FieldType::Number => Ty::Number,
            FieldType::Bool => Ty::Bool,
            FieldType::List => Ty::List(Box::new(Ty::Dyn)),
            FieldType::Object => Ty::Map(Box::new(Ty::Dyn)),
            FieldType::Any => Ty::Dyn,
        }
    }
}

fn record(name: &'static str, fields: &[(&'static str, Ty)]) -> Ty {
    Ty::Record(Arc::new(Record {
        name,
        fields: fields
            .iter()
            .map(|(name, ty)| (name.to_string(), ty.clone()))
            .collect(),
    }))
}

/// `signal` as policies and updates see it (`decide::celval`), with `data`
/// as its type declares it.
pub fn signal_ty(data: Option<&Fields>) -> Ty {
    let data = match data {
        Some(fields) => Ty::Record(Arc::new(Record {
            name: "signal.data",
            fields: fields
                .0
                .iter()
                .map(|(name, f)| (name.clone(), Ty::of_field(f.kind)))
                .collect(),
        })),
        None => Ty::Dyn,
    };
    record(
        "signal",
        &[
            ("id", Ty::String),
            ("type", Ty::String),
            ("source", Ty::String),
            ("subject", Ty::String),
            ("severity", Ty::String),
            ("data", data),
            ("datacontenttype", Ty::String),
            ("extensions", Ty::Map(Box::new(Ty::Dyn))),
        ],
    )
}

/// `context` as `Context::policy_view` makes it.
pub fn context_ty() -> Ty {
    let customer = record(
        "context.customer",
        &[
            ("id", Ty::String),
            ("tier", Ty::String),
            ("open_escalation", Ty::Bool),
        ],
    );
    let order = record(
        "context.order",
        &[
            ("id", Ty::String),
            ("value", Ty::Number),
            ("supplier", Ty::String),
        ],
    );
    record(
        "context",
        &[
            ("customer", customer),
            ("tier", Ty::String),
            ("open_escalation", Ty::Bool),
            ("order", order),
            ("business_hours", Ty::Bool),
            ("entities", Ty::Int),
            ("changes", Ty::List(Box::new(Ty::Dyn))),
            ("subject", Ty::Dyn),
            ("services", Ty::Map(Box::new(Ty::String))),
        ],
    )
}

/// `option` as an option-scoped rule sees each candidate.
pub fn option_ty() -> Ty {
    let names = || Ty::List(Box::new(Ty::String));
    record(
        "option",
        &[
            ("name", Ty::String),
            ("steps", names()),
            ("services", names()),
            ("processes", names()),
            ("automated", Ty::Bool),
        ],
    )
}

/// What an expression is checked against: its free variables.
pub struct Scope {
    pub variables: Vec<(&'static str, Ty)>,
}

/// The problems found in `expr`, each a sentence; `want_bool` also asks
/// that its result be a boolean.
pub fn check(expr: &IdedExpr, scope: &Scope, want_bool: bool) -> Vec<String> {
    let mut checker = Checker {
        locals: Vec::new(),
        scope,
        problems: Vec::new(),
    };
    let ty = checker.ty(expr);
    if want_bool && ty.known() && ty != Ty::Bool {
        checker
            .problems
            .push(format!("gives {}, not a boolean", ty.name()));
    }
    checker.problems.dedup();
    checker.problems
}

struct Checker<'a> {
    locals: Vec<(String, Ty)>,
    scope: &'a Scope,
    problems: Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, text: String) -> Ty {
        self.problems.push(text);
        Ty::Dyn
    }

    // Depth is bounded by `cel_bounded::MAX_DEPTH`: recursion is safe.
    fn ty(&mut self, e: &IdedExpr) -> Ty {
        match &e.expr {
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            },
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                let operand = self.ty(&select.operand);
                let field = self.field(&operand, &select.field, &path(&select.operand));
                if select.test { Ty::Bool } else { field }
            }
            Expr::List(list) => {
                let items: Vec<Ty> = list.elements.iter().map(|x| self.ty(x)).collect();
                Ty::List(Box::new(common(&items)))
            }
            Expr::Map(map) => {
                let mut values = Vec::new();
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.ty(&m.key);
                        values.push(self.ty(&m.value));
                    }
                }
                Ty::Map(Box::new(common(&values)))
            }
            Expr::Struct(_) | Expr::Unspecified => Ty::Dyn,
            Expr::Comprehension(c) => {
                let range = self.ty(&c.iter_range);
                let item = match &range {
                    Ty::List(t) => (**t).clone(),
                    Ty::Map(_) | Ty::Record(_) => Ty::String,
                    Ty::Dyn | Ty::Null => Ty::Dyn,
                    other => {
                        let name = other.name();
                        self.problem(format!(
                            "`{}` is {name}: a macro (exists, all, map, filter) needs a list or map",
                            path(&c.iter_range)
                        ))
                    }
                };
                let accu = self.ty(&c.accu_init);
                let before = self.locals.len();
                self.locals.push((c.iter_var.clone(), item));
                if let Some(second) = &c.iter_var2 {
                    self.locals.push((second.clone(), Ty::Dyn));
                }
                // The accumulator's type can change as it folds (a list
                // grows), so it is read as what it starts as, or dyn.
                let accu = if matches!(accu, Ty::Bool) {
                    Ty::Bool
                } else {
                    Ty::Dyn
                };
                self.locals.push((c.accu_var.clone(), accu));
                self.ty(&c.loop_cond);
                self.ty(&c.loop_step);
                let result = self.ty(&c.result);
                self.locals.truncate(before);
                result
            }
            Expr::Call(call) => {
                let target = call.target.as_deref().map(|t| (self.ty(t), path(t)));
                let args: Vec<Ty> = call.args.iter().map(|a| self.ty(a)).collect();
                self.call(&call.func_name, target, &args, &call.args)
            }
        }
    }

    fn ident(&mut self, name: &str) -> Ty {
        if let Some((_, ty)) = self.locals.iter().rev().find(|(n, _)| n == name) {
            return ty.clone();
        }
        if let Some((_, ty)) = self.scope.variables.iter().find(|(n, _)| *n == name) {
            return ty.clone();
        }
        // Type names used as values: `type(x) == string`.
        if matches!(
            name,
            "bool"
                | "int"
                | "uint"
                | "double"
                | "string"
                | "bytes"
                | "list"
                | "map"
                | "null_type"
                | "type"
        ) {
            return Ty::Dyn;
        }
        let known: Vec<&str> = self.scope.variables.iter().map(|(n, _)| *n).collect();
        self.problem(format!(
            "unknown variable `{name}` (this expression reads {})",
            known.join(", ")
        ))
    }

    fn field(&mut self, on: &Ty, field: &str, at: &str) -> Ty {
        match on {
            Ty::Record(r) => match r.fields.get(field) {
                Some(t) => t.clone(),
                None => {
                    let known: Vec<&str> = r.fields.keys().map(String::as_str).collect();
                    self.problem(format!(
                        "`{at}` has no field `{field}` (it has: {})",
                        known.join(", ")
                    ))
                }
            },
            Ty::Map(t) => (**t).clone(),
            Ty::Dyn | Ty::Null => Ty::Dyn,
            other => {
                let name = other.name();
                self.problem(format!("`{at}` is {name}: it has no field `{field}`"))
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        target: Option<(Ty, String)>,
        args: &[Ty],
        exprs: &[IdedExpr],
    ) -> Ty {
        if let Some(ty) = self.logic_or_comparison(name, args, exprs) {
            return ty;
        }
        if let Some(ty) = self.arithmetic_or_access(name, args, exprs) {
            return ty;
        }
        self.function(name, target, args, exprs)
    }

    /// `&&`, `||`, `!`, `==`, `!=` and the orderings: booleans, their
    /// operands checked.
    fn logic_or_comparison(&mut self, name: &str, args: &[Ty], exprs: &[IdedExpr]) -> Option<Ty> {
        let (arg, text) = operands(args, exprs);
        let ty = match name {
            operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::NOT_STRICTLY_FALSE => {
                for (i, t) in args.iter().enumerate() {
                    if t.known() && *t != Ty::Bool {
                        self.problems.push(format!(
                            "`{}` is {}, where a boolean is needed",
                            text(i),
                            t.name()
                        ));
                    }
                }
                Ty::Bool
            }
            operators::EQUALS | operators::NOT_EQUALS => {
                let (a, b) = (arg(0), arg(1));
                if !a.comparable(&b) {
                    self.problems.push(format!(
                        "`{}` ({}) is compared with `{}` ({}): they are never equal",
                        text(0),
                        a.name(),
                        text(1),
                        b.name()
                    ));
                }
                Ty::Bool
            }
            operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS => {
                let (a, b) = (arg(0), arg(1));
                let orderable =
                    |t: &Ty| !t.known() || t.numeric() || matches!(t, Ty::String | Ty::Bytes);
                if !orderable(&a) || !orderable(&b) || !a.comparable(&b) {
                    self.problems.push(format!(
                        "`{}` ({}) cannot be ordered against `{}` ({})",
                        text(0),
                        a.name(),
                        text(1),
                        b.name()
                    ));
                }
                Ty::Bool
            }
            _ => return None,
        };
        Some(ty)
    }

    /// Arithmetic, `?:`, indexing and `in`.
    fn arithmetic_or_access(&mut self, name: &str, args: &[Ty], exprs: &[IdedExpr]) -> Option<Ty> {
        let (arg, text) = operands(args, exprs);
        let ty = match name {
            operators::ADD => match (arg(0), arg(1)) {
                (a, b) if a.numeric() && b.numeric() => a,
                (Ty::String, Ty::String) => Ty::String,
                (Ty::List(t), Ty::List(_)) => Ty::List(t),
                (a, b) if !a.known() || !b.known() => Ty::Dyn,
                (a, b) => self.problem(format!(
                    "`{}` ({}) + `{}` ({}): no such addition",
                    text(0),
                    a.name(),
                    text(1),
                    b.name()
                )),
            },
            operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | operators::NEGATE => {
                for (i, t) in args.iter().enumerate() {
                    if t.known() && !t.numeric() {
                        self.problems.push(format!(
                            "`{}` is {}, where a number is needed",
                            text(i),
                            t.name()
                        ));
                    }
                }
                args.first().cloned().unwrap_or(Ty::Dyn)
            }
            operators::CONDITIONAL => {
                let c = arg(0);
                if c.known() && c != Ty::Bool {
                    self.problems.push(format!(
                        "`{}` is {}, where a boolean is needed",
                        text(0),
                        c.name()
                    ));
                }
                let (a, b) = (arg(1), arg(2));
                if a == b { a } else { Ty::Dyn }
            }
            operators::INDEX | operators::OPT_INDEX => match (arg(0), arg(1)) {
                (Ty::List(t), _) => *t,
                (Ty::Map(t), _) => *t,
                (Ty::Record(r), _) => match exprs.get(1).map(|e| &e.expr) {
                    Some(Expr::Literal(LiteralValue::String(s))) => {
                        let at = text(0);
                        self.field(&Ty::Record(r), s.inner(), &at)
                    }
                    _ => Ty::Dyn,
                },
                (t, _) if t.known() => self.problem(format!(
                    "`{}` is {}: it cannot be indexed",
                    text(0),
                    t.name()
                )),
                _ => Ty::Dyn,
            },
            operators::IN => match arg(1) {
                t @ (Ty::List(_) | Ty::Map(_) | Ty::Record(_) | Ty::Dyn | Ty::Null) => {
                    let _ = t;
                    Ty::Bool
                }
                t => {
                    self.problems.push(format!(
                        "`{}` is {}: `in` needs a list or map",
                        text(1),
                        t.name()
                    ));
                    Ty::Bool
                }
            },
            _ => return None,
        };
        Some(ty)
    }

    /// The functions and methods policies use (`size`, the string tests,
    /// conversions); any other is dyn.
    fn function(
        &mut self,
        name: &str,
        target: Option<(Ty, String)>,
        args: &[Ty],
        exprs: &[IdedExpr],
    ) -> Ty {
        let (arg, text) = operands(args, exprs);
        match name {
            "size" => {
                let of = target
                    .as_ref()
                    .map(|(t, p)| (t.clone(), p.clone()))
                    .unwrap_or((arg(0), text(0)));
                if of.0.known()
                    && !matches!(
                        of.0,
                        Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(_) | Ty::Record(_)
                    )
                {
                    self.problems
                        .push(format!("`{}` is {}: it has no size", of.1, of.0.name()));
                }
                Ty::Int
            }
            "startsWith" | "endsWith" | "contains" | "matches" => {
                if let Some((t, p)) = &target
                    && t.known()
                    && *t != Ty::String
                {
                    self.problems
                        .push(format!("`{p}` is {}: {name} needs a string", t.name()));
                }
                Ty::Bool
            }
            "int" => Ty::Int,
            "uint" => Ty::Uint,
            "double" => Ty::Double,
            "string" | "lowerAscii" | "upperAscii" | "trim" => Ty::String,
            "bool" => Ty::Bool,
            "bytes" => Ty::Bytes,
            _ => Ty::Dyn,
        }
    }
}

/// A call's operands: the type of the `i`th (dyn past the end) and its
/// text, to name it in a problem.
fn operands<'a>(
    args: &'a [Ty],
    exprs: &'a [IdedExpr],
) -> (impl Fn(usize) -> Ty + 'a, impl Fn(usize) -> String + 'a) {
    (
        move |i: usize| args.get(i).cloned().unwrap_or(Ty::Dyn),
        move |i: usize| exprs.get(i).map(path).unwrap_or_default(),
    )
}

/// The one type of several, or dyn.
fn common(types: &[Ty]) -> Ty {
    match types.split_first() {
        Some((first, rest)) if rest.iter().all(|t| t == first) => first.clone(),
        _ => Ty::Dyn,
    }
}

/// An expression as a person wrote it, near enough for a message: a
/// qualified name (`signal.data.items`), or `…`.
fn path(e: &IdedExpr) -> String {
    match &e.expr {
        Expr::Ident(name) => name.clone(),
        Expr::Select(s) => format!("{}.{}", path(&s.operand), s.field),
        Expr::Literal(LiteralValue::String(s)) => format!("'{}'", s.inner()),
        Expr::Literal(LiteralValue::Int(i)) => i.inner().to_string(),
        Expr::Literal(LiteralValue::Double(d)) => d.inner().to_string(),
        Expr::Literal(LiteralValue::Boolean(b)) => b.inner().to_string(),
        Expr::Call(c) if c.func_name == operators::INDEX && c.args.len() == 2 => {
            format!("{}[{}]", path(&c.args[0]), path(&c.args[1]))
        }
        Expr::Call(c) => match &c.target {
            Some(t) => format!("{}.{}(…)", path(t), c.func_name),
            None => format!("{}(…)", c.func_name),
        },
        _ => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, data: Option<&Fields>, option: bool) -> Vec<String> {
        let program = crate::cel_bounded::Bounded::compile(text).unwrap();
        let mut variables = vec![("signal", signal_ty(data)), ("context", context_ty())];
        if option {
            variables.push(("option", option_ty()));
        }
        check(program.expression(), &Scope { variables }, true)
    }

    fn ticket() -> Fields {
        let declared = [("ticket", "string"), ("severity", "string?"), ("n", "int")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Fields::parse(&declared).unwrap()
    }

    #[test]
    fn what_would_never_fire_is_named() {
        let p = problems("contxt.tier == 'gold'", None, false);
        assert!(p[0].contains("unknown variable `contxt`"), "{p:?}");
        let p = problems("context.tiers == 'gold'", None, false);
        assert!(p[0].contains("`context` has no field `tiers`"), "{p:?}");
        let p = problems("context.tier > 3", None, false);
        assert!(p[0].contains("cannot be ordered"), "{p:?}");
        let p = problems("context.tier == 3", None, false);
        assert!(p[0].contains("never equal"), "{p:?}");
        let p = problems("has(signal.data.tickt)", Some(&ticket()), false);
        assert!(p[0].contains("`signal.data` has no field `tickt`"), "{p:?}");
        let p = problems("signal.data.n + 'x' == 'y'", Some(&ticket()), false);
        assert!(!p.is_empty(), "{p:?}");
        let p = problems("context.tier", None, false);
        assert!(p[0].contains("not a boolean"), "{p:?}");
        let p = problems("option.services.exists(s, s == 1)", None, true);
        assert!(p[0].contains("never equal"), "{p:?}");
    }

    #[test]
    fn the_shipped_kinds_of_rule_pass() {
        for ok in [
            "!has(signal.data.severity) || signal.data.severity != 'high'",
            "context.tier == 'gold' || context.tier == 'platinum'",
            "has(signal.data.service) && signal.data.service == 'database'",
            "int(signal.data.n) < 3",
            "option.services.exists(s, context.services[s] == 'down')",
            "context.changes.exists(c, c.service == signal.subject)",
            "signal.data.anything.deep == 1",
            "size(signal.subject) > 0 && signal.subject.startsWith('service/')",
            "signal.extensions.team == 'x'",
        ] {
            let data = if ok.contains("anything") || ok.contains("service") {
                None
            } else {
                Some(ticket())
            };
            let p = problems(ok, data.as_ref(), true);
            assert!(p.is_empty(), "{ok}: {p:?}");
        }
    }
}
