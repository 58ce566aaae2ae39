//! CEL programs that cannot crash or stall the thread that runs them.
//!
//! The `cel` crate sets no limit on an expression's size, and a chain of
//! `1 + 1 + …` parses into a tree as deep as it is long, which its
//! compiler, its evaluator and the tree's own `Drop` then walk by
//! recursion: a long enough rule overflows the stack of whichever thread
//! touches it. Nor can an evaluation be stopped: two nested `exists` over a
//! signal's list of 60,000 items is 3.6 billion steps.
//!
//! `Bounded::compile` therefore refuses a source over `MAX_BYTES` before
//! parsing it, parses on a thread of its own with a known, large stack, and
//! keeps the program only if its tree is within `MAX_DEPTH`, `MAX_NODES`
//! and `MAX_NESTING`, measured without recursion. Every thread that later
//! holds the program walks a tree at most `MAX_DEPTH` deep.
//!
//! Evaluation charges a `Budget`: each comprehension (`exists`, `all`,
//! `exists_one`, `map`, `filter`) charges the size of the collection it
//! walks, before walking it, each time it runs. Past `BUDGET` steps the
//! evaluation fails, as any CEL error does (policies apply such a rule at
//! its strictest), and the signal is still decided.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use thiserror::Error;

/// Longest CEL source accepted, in bytes.
pub const MAX_BYTES: usize = 4096;
/// Deepest expression tree accepted (a chain of `a + b + …` is as deep as
/// it has terms; `&&` and `||` chains are balanced).
pub const MAX_DEPTH: usize = 48;
/// Most nodes of one expression tree.
pub const MAX_NODES: usize = 1000;
/// Most comprehensions nested in one another.
pub const MAX_NESTING: usize = 3;
/// Comprehension steps one evaluation may take.
pub const BUDGET: u64 = 100_000;
/// The stack of the thread a source is parsed on: parsing a source of
/// `MAX_BYTES` recurses once per term of its longest chain.
const PARSE_STACK: usize = 256 << 20;
/// The function each comprehension's range goes through. No CEL source can
/// call it: identifiers do not begin with `@`.
const RANGE: &str = "@range";

/// Why a CEL source is refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CelError {
    #[error("is {bytes} bytes long; at most {MAX_BYTES} are accepted")]
    TooLong { bytes: usize },
    #[error("is nested {depth} deep; at most {MAX_DEPTH} levels are accepted (split the rule)")]
    TooDeep { depth: usize },
    #[error("has {nodes} terms; at most {MAX_NODES} are accepted (split the rule)")]
    TooBig { nodes: usize },
    #[error(
        "nests comprehensions (exists, all, map, filter) {nesting} deep; at most {MAX_NESTING} are accepted"
    )]
    TooNested { nesting: usize },
    #[error("does not compile: {0}")]
    Compile(String),
}

/// A compiled CEL program within the limits above.
#[derive(Debug)]
pub struct Bounded {
    program: cel::Program,
    /// The program's tree with each comprehension's range charged to the
    /// budget: what is evaluated.
    charged: IdedExpr,
    shape: Shape,
}

/// How big a program's tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    pub nodes: usize,
    pub depth: usize,
    pub nesting: usize,
}

impl Bounded {
    /// Compiles `source`, or says which limit it passes.
    pub fn compile(source: &str) -> Result<Bounded, CelError> {
        if source.len() > MAX_BYTES {
            return Err(CelError::TooLong {
                bytes: source.len(),
            });
        }
        let text = source.to_string();
        let parsed = std::thread::Builder::new()
            .name("cel-compile".into())
            .stack_size(PARSE_STACK)
            .spawn(move || -> Result<Bounded, CelError> {
                let program =
                    cel::Program::compile(&text).map_err(|e| CelError::Compile(e.to_string()))?;
                let shape = Shape::of(program.expression());
                if shape.depth > MAX_DEPTH {
                    return Err(CelError::TooDeep { depth: shape.depth });
                }
                if shape.nodes > MAX_NODES {
                    return Err(CelError::TooBig { nodes: shape.nodes });
                }
                if shape.nesting > MAX_NESTING {
                    return Err(CelError::TooNested {
                        nesting: shape.nesting,
                    });
                }
                let charged = charge(program.expression().clone());
                Ok(Bounded {
                    program,
                    charged,
                    shape,
                })
            })
            .map_err(|e| CelError::Compile(format!("no thread to parse on: {e}")))?;
        parsed
            .join()
            .unwrap_or_else(|_| Err(CelError::Compile("the CEL parser panicked".into())))
    }

    /// The program's own tree (what it reads, for `decide::reads`).
    pub fn expression(&self) -> &IdedExpr {
        self.program.expression()
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Evaluates the program in `context`, which `budget` was installed in,
    /// charging a fresh allowance of `BUDGET` steps.
    pub fn execute(&self, context: &cel::Context<'_, '_>, budget: &Budget) -> cel::ResolveResult {
        budget.spent.store(0, Ordering::Relaxed);
        let result = cel::Value::resolve(&self.charged, context);
        // An error from an exhausted budget can be swallowed by `exists`
        // or `all` (an error in one step, true in another): spent is spent.
        if budget.spent.load(Ordering::Relaxed) > BUDGET {
            return Err(over_budget());
        }
        result
    }
}

fn over_budget() -> cel::ExecutionError {
    cel::ExecutionError::function_error(
        "comprehension",
        format!("over the evaluation budget of {BUDGET} steps"),
    )
}

/// The allowance of one evaluation, counted by the function every
/// comprehension's range passes through. Installed once in a root context.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    spent: Arc<AtomicU64>,
}

type RangeFn = Box<
    dyn for<'c, 'k> Fn(
            &mut cel::FunctionContext<'c, 'k>,
        ) -> Result<cel::common::value::CowVal<'c, 'k>, cel::ExecutionError>
        + Send
        + Sync,
>;

impl Budget {
    /// A budget counted in `context` (a root context: one made by
    /// `Context::with_env` or `default`).
    pub fn install(context: &mut cel::Context<'_, '_>) -> Budget {
        let budget = Budget::default();
        let spent = Arc::clone(&budget.spent);
        let range: RangeFn = Box::new(move |call| {
            let steps = call
                .args
                .first()
                .and_then(|v| v.as_sizer())
                .map_or(0, |s| u64::try_from(*s.size().inner()).unwrap_or(0));
            let total = spent.fetch_add(steps.saturating_add(1), Ordering::Relaxed) + steps + 1;
            if total > BUDGET {
                return Err(over_budget());
            }
            call.args
                .pop()
                .ok_or_else(|| cel::ExecutionError::function_error(RANGE, "no range"))
        });
        // "@range" is no name the standard library declares.
        let _ = context.add_function(RANGE, range);
        budget
    }
}

impl Shape {
    /// Measured with a stack of its own, not by recursion.
    fn of(root: &IdedExpr) -> Shape {
        let mut shape = Shape::default();
        let mut pending: Vec<(&IdedExpr, usize, usize)> = vec![(root, 1, 0)];
        while let Some((node, depth, nesting)) = pending.pop() {
            shape.nodes += 1;
            shape.depth = shape.depth.max(depth);
            shape.nesting = shape.nesting.max(nesting);
            let mut push = |child, nesting| {
                pending.push((child, depth + 1, nesting));
            };
            match &node.expr {
                Expr::Call(call) => {
                    for arg in call.target.as_deref().into_iter().chain(&call.args) {
                        push(arg, nesting);
                    }
                }
                Expr::Comprehension(c) => {
                    for part in [&c.iter_range, &c.accu_init, &c.result] {
                        push(part, nesting);
                    }
                    for body in [&c.loop_cond, &c.loop_step] {
                        push(body, nesting + 1);
                    }
                }
                Expr::List(list) => list.elements.iter().for_each(|e| push(e, nesting)),
                Expr::Map(map) => map.entries.iter().for_each(|e| {
                    if let EntryExpr::MapEntry(entry) = &e.expr {
                        push(&entry.key, nesting);
                        push(&entry.value, nesting);
                    }
                }),
                Expr::Struct(s) => s.entries.iter().for_each(|e| {
                    if let EntryExpr::StructField(field) = &e.expr {
                        push(&field.value, nesting);
                    }
                }),
                Expr::Select(select) => push(&select.operand, nesting),
                Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
            }
        }
        shape
    }
}

/// `expr` with every comprehension's range wrapped in `@range(…)`. The
/// tree is within `MAX_DEPTH`, so recursion here is bounded.
fn charge(mut expr: IdedExpr) -> IdedExpr {
    let each = |e: IdedExpr| charge(e);
    expr.expr = match expr.expr {
        Expr::Call(mut call) => {
            call.target = call.target.map(|t| Box::new(each(*t)));
            call.args = call.args.into_iter().map(each).collect();
            Expr::Call(call)
        }
        Expr::Comprehension(mut c) => {
            let range = each(std::mem::take(&mut c.iter_range));
            c.iter_range = IdedExpr {
                id: range.id,
                expr: Expr::Call(cel::common::ast::CallExpr {
                    func_name: RANGE.into(),
                    target: None,
                    args: vec![range],
                }),
            };
            c.accu_init = each(std::mem::take(&mut c.accu_init));
            c.loop_cond = each(std::mem::take(&mut c.loop_cond));
            c.loop_step = each(std::mem::take(&mut c.loop_step));
            c.result = each(std::mem::take(&mut c.result));
            Expr::Comprehension(c)
        }
        Expr::List(mut list) => {
            list.elements = list.elements.into_iter().map(each).collect();
            Expr::List(list)
        }
        Expr::Map(mut map) => {
            for entry in &mut map.entries {
                if let EntryExpr::MapEntry(e) = &mut entry.expr {
                    e.key = each(std::mem::take(&mut e.key));
                    e.value = each(std::mem::take(&mut e.value));
                }
            }
            Expr::Map(map)
        }
        Expr::Struct(mut s) => {
            for entry in &mut s.entries {
                if let EntryExpr::StructField(f) = &mut entry.expr {
                    f.value = each(std::mem::take(&mut f.value));
                }
            }
            Expr::Struct(s)
        }
        Expr::Select(mut select) => {
            select.operand = Box::new(each(*select.operand));
            Expr::Select(select)
        }
        other => other,
    };
    expr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(source: &str, items: usize) -> cel::ResolveResult {
        let program = Bounded::compile(source).expect("within the limits");
        let mut context = cel::Context::default();
        let budget = Budget::install(&mut context);
        let list: Vec<i64> = (0..items as i64).collect();
        context.add_variable_from_value("items", list);
        program.execute(&context, &budget)
    }

    #[test]
    fn long_deep_and_nested_sources_are_refused_before_they_can_hurt() {
        let chain = vec!["1"; 2000].join(" + ");
        assert!(matches!(
            Bounded::compile(&chain),
            Err(CelError::TooLong { .. })
        ));
        let chain = vec!["1"; 1000].join("+");
        assert!(matches!(
            Bounded::compile(&chain),
            Err(CelError::TooDeep { .. })
        ));
        let parens = format!("{}1{}", "(".repeat(2000), ")".repeat(2000));
        assert!(Bounded::compile(&parens).is_err());
        let nested = "items.exists(a, items.exists(b, items.exists(c, items.exists(d, d == 1))))";
        assert!(matches!(
            Bounded::compile(nested),
            Err(CelError::TooNested { nesting: 4 })
        ));
        let fine = "signal.data.items.exists(i, i.sku == 'x') && size(signal.subject) > 0";
        let shape = Bounded::compile(fine).expect("a plain rule").shape();
        assert!(shape.depth < MAX_DEPTH && shape.nesting == 1, "{shape:?}");
    }

    #[test]
    fn comprehensions_are_charged_and_stop_at_the_budget() {
        let pairs = "items.exists(a, items.exists(b, a + b < 0))";
        assert_eq!(run(pairs, 100), Ok(cel::Value::Bool(false)));
        let e = run(pairs, 10_000).expect_err("100 M steps are over the budget");
        assert!(e.to_string().contains("budget"), "{e}");
        assert_eq!(
            run("items.map(i, i * 2).filter(i, i > 10).size()", 50),
            Ok(cel::Value::Int(44))
        );
    }
}
