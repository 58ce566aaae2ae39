//! The tests that drive the console in a real terminal (tmux): a binary of
//! their own, run after the rest (cargo runs test binaries one at a time),
//! so that the machine's load from other tests does not reach their screens.

#[path = "../common/mod.rs"]
mod common;

mod a_deployment_console_reopens_its_journal;
mod an_on_call_engineer_acknowledges_a_page_in_the_console;
mod an_operator_approves_in_a_real_terminal;
mod the_console_answers_keys_in_a_storm;
mod two_operators_attach_to_one_server;
