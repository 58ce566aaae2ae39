//! The integration tests, one module per behaviour, in one binary: each
//! used to be a binary of its own, and linking ~40 of them against the
//! whole dependency tree was most of CI's time. The tests that drive a real
//! terminal are in `tests/terminal`, run on their own after these.

#[path = "../common/mod.rs"]
mod common;

mod a_breaker_holds_a_corrupted_model;
mod a_guarded_ramp_rolls_back_harm_and_promotes_the_live_policy;
mod a_real_alertmanager_opens_and_closes_alerts;
mod a_shadow_policy_decides_beside_the_live_one;
mod a_storm_is_a_handful_of_incidents;
mod a_supplier_delay_fans_out_across_processes;
mod alerts_and_pages_answer_as_their_senders_expect;
mod alerts_group_into_incidents;
mod an_operation_runs_on_its_own_deployment;
mod any_cluster_node_answers_for_the_whole_cluster;
mod bad_input_is_named_and_never_stops_the_engine;
mod bad_requests_get_json_errors;
mod cluster_harness;
mod deployments_are_checked_and_reloaded_safely;
mod explain_checks_its_place_in_the_chain;
mod hostile_input_cannot_brick_or_stall;
mod intake_refuses_when_the_engine_cannot_decide;
mod metrics_are_valid_prometheus_text;
mod notifications_reach_their_receivers;
mod oncall_holds_hour_by_hour_across_daylight_saving;
mod pages_reach_pagerduty_and_fall_through;
mod pages_reach_people_and_stop_when_acknowledged;
mod parsers_never_panic;
mod poison_signal_is_quarantined;
mod policies_fail_closed;
mod policies_load_or_say_why;
mod probes_and_webhooks_follow_real_endpoints;
mod real_clients_speak_to_the_intake;
mod refusals_name_the_field;
mod replay_estimates_rules_alone_from_the_journal;
mod review_actions_are_checked_and_teach;
mod secrets_are_never_stored;
mod shared_views_are_journaled_once_per_change;
mod signals_are_durable_before_202;
mod signals_are_identified_by_source_and_id;
mod silences_work_with_amtool;
mod slow_clients_are_cut_off_and_connections_capped;
mod the_advisor_explains_and_proposes_but_never_acts;
mod the_binary_reports_explains_and_survives_kill_9;
mod the_cluster_survives_the_loss_of_a_machine;
mod the_console_draws_a_real_run;
mod the_event_stream_resumes_without_gaps;
mod the_intake_log_keeps_what_it_acknowledged;
mod the_journal_keeps_and_restores_everything;
mod the_journal_says_who_chose_each_option;
mod the_model_exports_as_the_engine_had_it;
mod tokens_and_roles_are_enforced;
mod webhook_executors_speak_https;
mod what_is_accepted_reads_back_after_a_restart;
