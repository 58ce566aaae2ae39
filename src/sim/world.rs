//! Northwind Logistics: the company the simulator runs. Built from a seed,
//! so the same seed gives the same customers, suppliers and teams.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::context::{
    Agent, Calendar, Customer, Health, Order, OrderState, Service, Shift, Supplier, Team, Tier,
    World,
};

const FIRST: &[&str] = &[
    "Acme",
    "Helios",
    "Brightline",
    "Cobalt",
    "Dunmore",
    "Evergreen",
    "Fjord",
    "Granite",
    "Harbor",
    "Ironwood",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Meridian",
    "Northgate",
    "Orchard",
    "Pioneer",
    "Quarry",
    "Redwood",
    "Summit",
    "Tidewater",
    "Union",
    "Vantage",
    "Westbrook",
];
const SECOND: &[&str] = &[
    "Retail",
    "Foods",
    "Pharma",
    "Outfitters",
    "Hardware",
    "Electronics",
    "Home",
    "Motors",
    "Garden",
    "Labs",
];

pub const SUPPLIERS: &[(&str, &str, f64)] = &[
    ("baltic", "Baltic Components", 0.8),
    ("nordic", "Nordic Parts", 0.95),
    ("delta", "Delta Packaging", 0.7),
    ("eastwind", "Eastwind Textiles", 0.6),
    ("granum", "Granum Foods", 0.9),
    ("hansa", "Hansa Metals", 0.8),
    ("ionic", "Ionic Chemicals", 0.7),
    ("kora", "Kora Plastics", 0.9),
    ("lindqvist", "Lindqvist Timber", 0.6),
    ("meyer", "Meyer Electronics", 0.95),
];

/// Which supplier stands in for which (not every supplier has one).
const ALTERNATES: &[(&str, &str)] = &[
    ("baltic", "nordic"),
    ("delta", "kora"),
    ("eastwind", "lindqvist"),
    ("hansa", "meyer"),
    ("ionic", "granum"),
    ("kora", "delta"),
    ("nordic", "baltic"),
];

pub const SERVICES: &[&str] = &[
    "carrier",
    "erp",
    "notifications",
    "orchestration",
    "payments",
    "supplier-portal",
    "warehouse",
];

/// (team, process, skills, capacity, shift start, shift end, agents)
type TeamSpec = (
    &'static str,
    &'static str,
    &'static [&'static str],
    u32,
    u32,
    u32,
    usize,
);

const TEAMS: &[TeamSpec] = &[
    (
        "warehouse",
        "fulfillment",
        &["warehouse", "shipping"],
        40,
        6,
        22,
        8,
    ),
    ("planning", "fulfillment", &["planning"], 10, 7, 19, 3),
    (
        "procurement",
        "procurement",
        &["purchasing", "purchasing_lead"],
        12,
        8,
        18,
        4,
    ),
    ("support", "customer_service", &["support"], 24, 0, 24, 6),
    (
        "specialists",
        "customer_service",
        &["specialist"],
        8,
        8,
        20,
        3,
    ),
    (
        "account-management",
        "customer_service",
        &["account_management"],
        6,
        8,
        18,
        2,
    ),
    (
        "finance",
        "finance",
        &["credit", "finance_review"],
        10,
        8,
        18,
        3,
    ),
    ("sre", "incident", &["sre", "sre_lead"], 6, 0, 24, 3),
];

const PEOPLE: &[&str] = &[
    "ana", "ben", "chloe", "dmitri", "eva", "farid", "grace", "hiro", "ines", "jonas", "kim",
    "lena", "mateo", "nora", "oskar", "priya", "quinn", "rosa", "sami", "tomas", "uma", "viktor",
    "wen", "yara", "zoe", "arne", "bea", "cyrus", "dana", "emil", "fatima", "gus",
];

pub const CUSTOMERS: usize = 240;
pub const INITIAL_ORDERS: usize = 120;

/// The VIP of the escalation episode: always platinum.
pub const VIP: &str = "c0007";

/// Builds the world for a seed, at `start`.
// Over 80 lines: the simulated company as data.
pub fn northwind(rng: &mut ChaCha8Rng, start: DateTime<Utc>) -> World {
    let mut customers = Vec::new();
    for i in 0..CUSTOMERS {
        let id = format!("c{i:04}");
        let roll: f64 = rng.random();
        let tier = if id == VIP {
            Tier::Platinum
        } else if roll < 0.5 {
            Tier::Bronze
        } else if roll < 0.75 {
            Tier::Silver
        } else if roll < 0.92 {
            Tier::Gold
        } else {
            Tier::Platinum
        };
        let name = format!(
            "{} {}",
            FIRST[i % FIRST.len()],
            SECOND[(i / FIRST.len() + i) % SECOND.len()]
        );
        customers.push(Customer {
            id,
            name,
            tier,
            open_escalation: false,
        });
    }
    let suppliers: Vec<Supplier> = SUPPLIERS
        .iter()
        .map(|(id, name, reliability)| Supplier {
            id: id.to_string(),
            name: name.to_string(),
            reliability: *reliability,
            alternate: ALTERNATES
                .iter()
                .find(|(s, _)| s == id)
                .map(|(_, a)| a.to_string()),
            delayed_until: None,
        })
        .collect();
    let mut orders = Vec::new();
    for i in 0..INITIAL_ORDERS {
        let customer = &customers[rng.random_range(0..customers.len())];
        orders.push(Order {
            id: format!("o{:05}", i),
            customer: customer.id.clone(),
            supplier: pick_supplier(rng).to_string(),
            value: order_value(rng),
            promised: start + Duration::hours(rng.random_range(12..96)),
            state: OrderState::Open,
        });
    }
    let services = SERVICES
        .iter()
        .map(|s| Service {
            id: s.to_string(),
            health: Health::Up,
            latency_ms: 40 + (s.len() as u32 * 7) % 60,
            owner: None,
        })
        .collect();
    let mut teams = Vec::new();
    let mut agents = Vec::new();
    let mut person = 0;
    for (id, process, skills, capacity, start_hour, end_hour, staff) in TEAMS {
        let shift = Shift {
            start_hour: *start_hour,
            end_hour: *end_hour,
            timezone: None,
        };
        teams.push(Team {
            id: id.to_string(),
            process: process.to_string(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            capacity: *capacity,
            load: 0,
            shift,
            oncall: Vec::new(),
        });
        for _ in 0..*staff {
            let name = PEOPLE[person % PEOPLE.len()];
            person += 1;
            agents.push(Agent {
                id: name.to_string(),
                team: id.to_string(),
                skills: skills.iter().map(|s| s.to_string()).collect(),
                capacity: 3,
                load: 0,
                shift,
            });
        }
    }
    World {
        customers,
        orders,
        suppliers,
        services,
        teams,
        agents,
        calendar: Calendar::default(),
        roster: Default::default(),
    }
}

/// Suppliers are not used evenly: Baltic carries the most orders, so its
/// delay is the one that cascades.
pub fn pick_supplier(rng: &mut ChaCha8Rng) -> &'static str {
    if rng.random::<f64>() < 0.3 {
        "baltic"
    } else {
        SUPPLIERS.choose(rng).map_or("baltic", |s| s.0)
    }
}

/// Order values: mostly small, a long tail of large ones.
pub fn order_value(rng: &mut ChaCha8Rng) -> f64 {
    let exp: f64 = rng.random_range(6.0..15.5);
    (exp.exp2() * 100.0).round() / 100.0
}
