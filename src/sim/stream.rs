//! The signal stream of a Northwind day: background traffic plus the
//! scripted episodes. Generated up front from the seed, so the model run and
//! the rules-only baseline see exactly the same signals.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::truth::{NOISE, REMEDIABLE};
use super::world::{self, VIP};
use crate::context::World;
use crate::signal::{Severity, Signal};

/// A scripted episode, named for reports and the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub name: &'static str,
    pub starts_after: Duration,
    pub lasts: Duration,
}

pub fn episodes() -> [Episode; 4] {
    [
        Episode {
            name: "supplier-delay cascade",
            starts_after: Duration::hours(2),
            lasts: Duration::minutes(30),
        },
        Episode {
            name: "payments degradation",
            starts_after: Duration::hours(3),
            lasts: Duration::minutes(45),
        },
        Episode {
            name: "VIP escalation",
            starts_after: Duration::minutes(250),
            lasts: Duration::minutes(80),
        },
        Episode {
            name: "quarter-end approval surge",
            starts_after: Duration::hours(5),
            lasts: Duration::hours(1),
        },
    ]
}

const TICKET_TEXTS: &[&str] = &[
    "Where is my order? The tracking page has not moved since Monday",
    "Package arrived damaged, two boxes crushed",
    "One pallet is missing from the delivery",
    "Can you change the delivery address for my order",
    "We were charged twice for the same shipment",
    "The invoice shows the wrong VAT number, please correct the invoice",
    "Requesting a refund for the cancelled order",
    "Shipment is stuck in customs, what documents do you need",
    "This delay is unacceptable, we will cancel our contract if it happens again",
    "Our lawyer will contact you about the repeated late deliveries",
    "How do I book a pickup for returns",
    "Delivery window was missed, please reschedule",
];

const ALERTS: &[(&str, &str)] = &[
    ("DiskFull", "warehouse"),
    ("PodCrashLooping", "orchestration"),
    ("HighMemory", "erp"),
    ("QueueBacklog", "notifications"),
    ("ProbeFlapping", "carrier"),
    ("CertExpiresIn30d", "supplier-portal"),
    ("ClockSkewMinor", "erp"),
    ("HighErrorRate", "carrier"),
    ("HighLatency", "payments"),
    ("ReplicationLag", "erp"),
    ("HighErrorRate", "warehouse"),
];

const VENDORS: &[&str] = &[
    "Officeline",
    "Fuelcard Co",
    "Tyre Depot",
    "CloudHost",
    "Pallet Pros",
    "SecureGuard",
    "Print&Post",
    "Forklift Rental",
    "Unknown GmbH",
    "New Vendor Ltd",
];

struct Gen<'a> {
    rng: ChaCha8Rng,
    start: DateTime<Utc>,
    out: Vec<Signal>,
    next_signal: u64,
    next_order: u64,
    next_ticket: u64,
    tickets: Vec<(String, String)>,
    world: &'a World,
}

impl Gen<'_> {
    fn signal(
        &mut self,
        at: DateTime<Utc>,
        source: &str,
        kind: &str,
        subject: String,
        data: Value,
    ) -> &mut Signal {
        self.next_signal += 1;
        self.out.push(Signal {
            id: format!("nw-{:06}", self.next_signal),
            source: format!("northwind/{source}"),
            kind: kind.to_string(),
            subject,
            time: at,
            data,
            ..Signal::default()
        });
        let last = self.out.len() - 1;
        &mut self.out[last]
    }

    fn customer(&mut self) -> String {
        let i = self.rng.random_range(0..self.world.customers.len());
        self.world.customers[i].id.clone()
    }

    fn order(&mut self, at: DateTime<Utc>, customer: Option<&str>) {
        let customer = customer.map_or_else(|| self.customer(), str::to_string);
        let id = format!("o{:05}", self.next_order);
        self.next_order += 1;
        let supplier = world::pick_supplier(&mut self.rng);
        let value = world::order_value(&mut self.rng);
        let promised = at + Duration::hours(self.rng.random_range(24..120));
        let channel = *["web", "edi", "phone"]
            .choose(&mut self.rng)
            .unwrap_or(&"web");
        let lines = self.rng.random_range(1..12);
        self.signal(
            at,
            "shop",
            "order.placed",
            format!("order/{id}"),
            json!({
                "customer": customer, "supplier": supplier, "value": value,
                "promised": promised.to_rfc3339(), "channel": channel,
                "lines": lines,
            }),
        );
    }

    fn ticket(&mut self, at: DateTime<Utc>, customer: Option<&str>, text: Option<&str>) {
        let customer = customer.map_or_else(|| self.customer(), str::to_string);
        let id = format!("t{:05}", self.next_ticket);
        self.next_ticket += 1;
        let text = text.map_or_else(
            || {
                TICKET_TEXTS
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or(TICKET_TEXTS[0])
                    .to_string()
            },
            str::to_string,
        );
        let mut data =
            json!({ "customer": customer, "text": text, "ticket": id, "channel": "email" });
        // Some customers write twice about the same thing.
        if self.rng.random::<f64>() < 0.08
            && let Some((earlier, _)) = self
                .tickets
                .iter()
                .rev()
                .find(|(_, c)| *c == customer)
                .cloned()
        {
            data["duplicate_of"] = json!(earlier);
        }
        self.tickets.push((id.clone(), customer.clone()));
        self.signal(
            at,
            "helpdesk",
            "ticket.opened",
            format!("customer/{customer}"),
            data,
        );
    }

    fn alert(&mut self, at: DateTime<Utc>, name: &str, service: &str, severity: Severity) {
        let fingerprint = format!("{:016x}", self.rng.random::<u64>());
        let summary = format!("{name} on {service}");
        let s = self.signal(
            at,
            "alertmanager",
            "alert.firing",
            format!("service/{service}"),
            json!({ "alertname": name, "service": service, "fingerprint": fingerprint, "summary": summary }),
        );
        s.severity = Some(severity);
    }

    fn approval(&mut self, at: DateTime<Utc>, quarter_end: bool) {
        let vendor = *VENDORS.choose(&mut self.rng).unwrap_or(&VENDORS[0]);
        let known = !vendor.contains("Unknown") && !vendor.contains("New");
        let exp: f64 = if quarter_end {
            self.rng.random_range(8.0..17.0)
        } else {
            self.rng.random_range(7.0..16.5)
        };
        let amount = (exp.exp2() * 100.0).round() / 100.0;
        let over_budget = self.rng.random::<f64>() < if quarter_end { 0.25 } else { 0.1 };
        let category = *["travel", "equipment", "services", "freight", "software"]
            .choose(&mut self.rng)
            .unwrap_or(&"services");
        let id = format!("ap-{}", self.next_signal + 1);
        self.signal(
            at,
            "erp",
            "approval.requested",
            format!("approval/{id}"),
            json!({
                "amount": amount, "vendor": vendor, "known_vendor": known,
                "over_budget": over_budget, "category": category, "quarter_end": quarter_end,
            }),
        );
    }

    fn health(&mut self, at: DateTime<Utc>, service: &str, health: &str, latency: u32) {
        self.signal(
            at,
            "probes",
            "health.changed",
            format!("service/{service}"),
            json!({ "service": service, "health": health, "latency_ms": latency }),
        );
    }

    fn delay(&mut self, at: DateTime<Utc>, supplier: &str, hours: f64) {
        self.signal(
            at,
            "supplier-portal",
            "supplier.delayed",
            format!("supplier/{supplier}"),
            json!({ "supplier": supplier, "delay_hours": hours,
                    "reason": "Carrier capacity shortage at the origin port" }),
        );
    }

    /// Arrivals of one kind at `per_minute(t)`, by thinning a Poisson process.
    fn arrivals(
        &mut self,
        until: Duration,
        max_rate: f64,
        per_minute: impl Fn(Duration) -> f64,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = 0.0f64;
        let end = until.num_seconds() as f64 / 60.0;
        loop {
            let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
            t += -u.ln() / max_rate;
            if t >= end {
                break;
            }
            let offset = Duration::seconds((t * 60.0) as i64);
            if self.rng.random::<f64>() < per_minute(offset) / max_rate {
                out.push(self.start + offset);
            }
        }
        out
    }
}

/// The whole stream for `duration` from `start`, sorted by time.
pub fn generate(seed: u64, start: DateTime<Utc>, duration: Duration, world: &World) -> Vec<Signal> {
    generate_after(seed, start, duration, world, 0)
}

/// `generate`, its signal, order and ticket numbers counted from `after`:
/// a session resumed over a journal that holds `after` signals names
/// nothing the earlier sessions named (each of them used fewer numbers
/// than it journaled signals).
pub fn generate_after(
    seed: u64,
    start: DateTime<Utc>,
    duration: Duration,
    world: &World,
    after: u64,
) -> Vec<Signal> {
    let mut g = Gen {
        rng: <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed ^ 0x57ea ^ after),
        start,
        out: Vec::new(),
        next_signal: after,
        next_order: world.orders.len() as u64 + after,
        next_ticket: after,
        tickets: Vec::new(),
        world,
    };
    let [cascade, payments, vip, surge] = episodes();

    g.steady(duration, surge);
    g.cascade(cascade, duration);
    g.payments_outage(payments, duration);
    g.vip_escalation(vip, duration);
    g.out.retain(|s| s.time < start + duration);
    g.out
        .sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    g.out
}

impl Gen<'_> {
    /// The day's steady traffic, one generator per kind of signal (orders,
    /// tickets, approvals with the quarter-end `surge`, alerts, supplier
    /// delays, health, unmapped legacy events), in this order: each draws
    /// from the one random stream.
    fn steady(&mut self, duration: Duration, surge: Episode) {
        let start = self.start;
        let within = |e: Episode, t: Duration| t >= e.starts_after && t < e.starts_after + e.lasts;
        for at in self.arrivals(duration, 2.5, |_| 2.2) {
            self.order(at, None);
        }
        for at in self.arrivals(duration, 0.8, |_| 0.8) {
            self.ticket(at, None, None);
        }
        for at in self.arrivals(duration, 2.4, |t| if within(surge, t) { 2.4 } else { 0.35 }) {
            let quarter_end =
                surge.starts_after <= at - start && at - start < surge.starts_after + surge.lasts;
            self.approval(at, quarter_end);
        }
        for at in self.arrivals(duration, 0.3, |_| 0.3) {
            let (name, service) = *ALERTS.choose(&mut self.rng).unwrap_or(&ALERTS[0]);
            let severity = if REMEDIABLE.contains(&name) || NOISE.contains(&name) {
                Severity::Warning
            } else if self.rng.random::<f64>() < 0.4 {
                Severity::Critical
            } else {
                Severity::Error
            };
            self.alert(at, name, service, severity);
        }
        for at in self.arrivals(duration, 1.0 / 30.0, |_| 1.0 / 30.0) {
            let supplier = world::SUPPLIERS
                .choose(&mut self.rng)
                .map_or("delta", |s| s.0);
            let hours = *[2.0, 4.0, 6.0, 10.0, 16.0, 20.0, 30.0, 48.0, 72.0]
                .choose(&mut self.rng)
                .unwrap_or(&6.0);
            self.delay(at, supplier, hours);
        }
        for at in self.arrivals(duration, 1.0 / 40.0, |_| 1.0 / 40.0) {
            let service = *["carrier", "erp", "notifications", "warehouse"]
                .choose(&mut self.rng)
                .unwrap_or(&"erp");
            self.health(at, service, "degraded", 700);
            let back = at + Duration::minutes(self.rng.random_range(5..20));
            self.health(back, service, "up", 60);
        }
        for at in self.arrivals(duration, 1.0 / 90.0, |_| 1.0 / 90.0) {
            let kind = *["inventory.recount", "customs.hold", "fleet.telematics"]
                .choose(&mut self.rng)
                .unwrap_or(&"customs.hold");
            self.signal(
                at,
                "legacy",
                kind,
                String::new(),
                json!({ "note": "unmapped event from a legacy system" }),
            );
        }
    }

    /// Episode: Baltic, the most used supplier, is three days late.
    fn cascade(&mut self, cascade: Episode, duration: Duration) {
        let start = self.start;
        let t0 = start + cascade.starts_after;
        if cascade.starts_after < duration {
            self.delay(t0, "baltic", 72.0);
            for i in 0..8 {
                self.ticket(
                    t0 + Duration::minutes(5 + 3 * i),
                    None,
                    Some("Where is my order? The promised date is tomorrow"),
                );
            }
        }
    }

    /// Episode: payments degrade, go down, recover.
    fn payments_outage(&mut self, payments: Episode, duration: Duration) {
        let start = self.start;
        let t1 = start + payments.starts_after;
        if payments.starts_after < duration {
            self.health(t1, "payments", "degraded", 900);
            self.alert(
                t1 + Duration::minutes(2),
                "HighLatency",
                "payments",
                Severity::Error,
            );
            self.health(t1 + Duration::minutes(15), "payments", "down", 0);
            self.alert(
                t1 + Duration::minutes(16),
                "PaymentsErrorRate",
                "payments",
                Severity::Critical,
            );
            self.alert(
                t1 + Duration::minutes(22),
                "CheckoutFailures",
                "payments",
                Severity::Critical,
            );
            self.health(t1 + payments.lasts, "payments", "up", 80);
            self.signal(
                t1 + payments.lasts,
                "alertmanager",
                "alert.resolved",
                "service/payments".into(),
                json!({ "alertname": "PaymentsErrorRate", "service": "payments" }),
            );
        }
    }

    /// Episode: the platinum VIP escalates; their orders and tickets follow.
    fn vip_escalation(&mut self, vip: Episode, duration: Duration) {
        let start = self.start;
        let t2 = start + vip.starts_after;
        if vip.starts_after < duration {
            self.signal(
                t2,
                "crm",
                "escalation.opened",
                format!("customer/{VIP}"),
                json!({ "customer": VIP, "reason": "three late deliveries this month" }),
            );
            for i in 0..4 {
                self.ticket(
                    t2 + Duration::minutes(2 + 10 * i),
                    Some(VIP),
                    Some("This delay is unacceptable, we will cancel our contract"),
                );
                self.order(t2 + Duration::minutes(5 + 12 * i), Some(VIP));
            }
            self.signal(
                t2 + vip.lasts,
                "crm",
                "escalation.resolved",
                format!("customer/{VIP}"),
                json!({ "customer": VIP }),
            );
        }
    }
}
