//! What a CEL expression reads of the variables it is given.
//!
//! An option-scoped rule is evaluated once per candidate option of every
//! decision. The default policy's `no-down-services` rule walks each
//! option's services against `context.services`, and the interpreter
//! resolves every qualified name afresh at each step: that one rule was a
//! sixth of the engine thread's instructions in the bench. Yet what it reads
//! (the option and the service health) is the same from one decision to the
//! next. Knowing which variables and which fields of them an expression
//! reads lets the policy set reuse a rule's result while those inputs are
//! unchanged (`PolicySet::evaluate`).
//!
//! The walk is conservative: a variable read whole (`context`, or
//! `context["services"]`, which indexes a whole `context`) counts as read
//! whole, and comprehension variables (`s` in `exists(s, ...)`) are local.

use std::collections::BTreeSet;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr};

/// The free variables an expression reads, whole or by first field.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// Variables read as a whole value.
    pub whole: BTreeSet<String>,
    /// (variable, field) for each `variable.field` read (deeper selections
    /// count as their first field).
    pub fields: BTreeSet<(String, String)>,
}

impl Reads {
    pub fn of(expr: &IdedExpr) -> Reads {
        let mut reads = Reads::default();
        walk(expr, &mut Vec::new(), &mut reads);
        reads
    }

    /// The fields of `context` the expression reads, if it reads nothing
    /// else but `option` (whole or in part): its result is then fixed by
    /// the option and those fields.
    pub fn only_option_and_context_fields(&self) -> Option<Vec<String>> {
        if self.whole.iter().any(|v| v != "option") {
            return None;
        }
        let mut fields = Vec::new();
        for (var, field) in &self.fields {
            match var.as_str() {
                "option" => {}
                "context" => fields.push(field.clone()),
                _ => return None,
            }
        }
        Some(fields)
    }
}

fn walk(e: &IdedExpr, locals: &mut Vec<String>, out: &mut Reads) {
    let free = |name: &str, locals: &[String]| !locals.iter().any(|l| l == name);
    match &e.expr {
        Expr::Ident(name) => {
            if free(name, locals) {
                out.whole.insert(name.clone());
            }
        }
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(root) if free(root, locals) => {
                out.fields.insert((root.clone(), select.field.clone()));
            }
            _ => walk(&select.operand, locals, out),
        },
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                walk(target, locals, out);
            }
            for arg in &call.args {
                walk(arg, locals, out);
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, locals, out);
            walk(&c.accu_init, locals, out);
            let before = locals.len();
            locals.push(c.iter_var.clone());
            locals.extend(c.iter_var2.iter().cloned());
            locals.push(c.accu_var.clone());
            walk(&c.loop_cond, locals, out);
            walk(&c.loop_step, locals, out);
            walk(&c.result, locals, out);
            locals.truncate(before);
        }
        Expr::List(list) => {
            for element in &list.elements {
                walk(element, locals, out);
            }
        }
        Expr::Map(map) => entries(map.entries.iter().map(|e| &e.expr), locals, out),
        Expr::Struct(s) => entries(s.entries.iter().map(|e| &e.expr), locals, out),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entries<'a>(
    entries: impl Iterator<Item = &'a EntryExpr>,
    locals: &mut Vec<String>,
    out: &mut Reads,
) {
    for entry in entries {
        match entry {
            EntryExpr::MapEntry(m) => {
                walk(&m.key, locals, out);
                walk(&m.value, locals, out);
            }
            EntryExpr::StructField(f) => walk(&f.value, locals, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(text: &str) -> Reads {
        Reads::of(cel::Program::compile(text).unwrap().expression())
    }

    fn fields(text: &str) -> Option<Vec<String>> {
        reads(text).only_option_and_context_fields()
    }

    #[test]
    fn the_default_service_rule_reads_the_option_and_service_health() {
        let text =
            "option.services.exists(s, s in context.services && context.services[s] == 'down')";
        let r = reads(text);
        assert!(r.whole.is_empty(), "{r:?}");
        assert_eq!(fields(text), Some(vec!["services".to_string()]));
    }

    #[test]
    fn anything_that_reads_the_signal_or_a_whole_context_is_not_fixed_by_the_option() {
        assert_eq!(fields("option.automated && signal.type == 'x'"), None);
        assert_eq!(fields("'services' in context"), None);
        assert_eq!(fields("context['services'].size() > 0"), None);
        assert_eq!(fields("[signal][0].id == 'x'"), None);
        assert_eq!(fields("{'a': signal.id}.a == 'x'"), None);
        // An identifier that is no variable of ours (a type name, say) is
        // not known to be constant either.
        assert_eq!(fields("type(option.name) == string"), None);
    }

    #[test]
    fn comprehension_variables_are_local_but_shadow_nothing_outside() {
        // `signal` here is the comprehension's own variable...
        assert_eq!(
            fields("option.services.all(signal, signal != '')"),
            Some(vec![])
        );
        // ...but not in the range it iterates, nor after it.
        assert_eq!(fields("signal.data.all(signal, true)"), None);
        assert_eq!(
            fields("option.steps.exists(x, x == 'a') || signal.id == 'x'"),
            None
        );
    }

    #[test]
    fn deeper_selections_count_as_their_first_field() {
        assert_eq!(
            fields("has(context.order.value) && context.tier == 'gold' && option.automated"),
            Some(vec!["order".to_string(), "tier".to_string()])
        );
    }
}
