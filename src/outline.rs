//! What the transform would write for a record, without writing it.
//!
//! The canary judge reads a few of the output's top-level members (`hash`, `phase`,
//! `status`, `duration`, the time, the `http` attributes). Writing the whole record and then
//! reading it again cost more than the transform itself, so [`Outline`] walks a planned
//! record in the writer's order ([`crate::output::write`]) and hands over each top-level
//! member the output would have: the members copied from the input as spans of it, and the
//! values planning decided. Members the judge never reads (`dd`, `network`, `grpc`,
//! `message`, `_log`) are left out.

use crate::endpoint::Routes;
use crate::envoy::{self, Level};
use crate::keys::{Name, Side};
use crate::output;
use crate::plan::{Action, Found, Plan, ValuePlan};
use crate::read::Member;
use crate::record::Record;
use crate::scan;

/// One top-level member of the output.
pub(crate) enum Written<'a> {
    /// A member of the input, copied unchanged: its key and value are in `buf`.
    Copied { buf: &'a [u8], member: &'a Member },
    /// `hash` or `phase` (`name`), with its JSON value as written.
    Label { name: Name, value: &'a [u8] },
    /// `duration`, in nanoseconds.
    Duration(u64),
    /// The added `http` object.
    Http(Http<'a>),
    /// The added `graphql.operation.name` (escaped string content).
    GraphqlOperation(&'a [u8]),
    /// The added `status`.
    Status(Level),
}

/// The members of the added `http` object that say which request it was. Strings are
/// escaped JSON string content, as written.
pub(crate) struct Http<'a> {
    pub status_code: u64,
    pub method: Option<&'a [u8]>,
    /// `url_details.path`: the path without its query.
    pub path: Option<&'a [u8]>,
    /// `endpoint`, absent for a 404 that no route template matches.
    pub endpoint: Option<&'a [u8]>,
}

/// A planned record, to be walked by [`Outline::for_each`].
pub(crate) struct Outline<'o> {
    pub record: &'o Record<'o>,
    pub found: &'o Found<'o>,
    pub plan: &'o Plan<'o>,
    pub routes: &'o Routes,
    pub scratch: &'o mut Scratch,
}

/// Working memory of [`Outline::for_each`], reused across records: the endpoint as the writer
/// writes it, and the writer's scratch space for a path with escapes.
#[derive(Default)]
pub(crate) struct Scratch {
    endpoint: Vec<u8>,
    work: [Vec<u8>; 2],
}

impl<'o> Outline<'o> {
    /// Calls `visit` with each top-level member of the output, in the output's order. Returns
    /// false, having stopped, at a member the writer rewrites inside (one whose nested objects
    /// repeat a key): such a record has to be written to be read as its output.
    pub fn for_each(self, mut visit: impl FnMut(Written<'o>)) -> bool {
        let Outline {
            record,
            found,
            plan,
            routes,
            scratch,
        } = self;
        let http = plan.access.attributes.as_ref().filter(|a| a.http);
        let path = found.original_path.or(found.path);
        let code = http
            .and_then(|a| a.code)
            .unwrap_or(envoy::Whole::ZERO)
            .value;
        let Scratch { endpoint, work } = scratch;
        endpoint.clear();
        if let (Some(_), Some(path)) = (http, path) {
            let method = found.method.unwrap_or_default();
            output::write_endpoint(endpoint, (routes, work), method, path, code);
        }
        let endpoint: &'o Vec<u8> = endpoint;
        // Without `,"endpoint":"` and the closing quote; nothing when none was written.
        let endpoint = endpoint.get(13..endpoint.len().saturating_sub(1));

        for side in [Side::Envelope, Side::Record] {
            let members = record.side(side).members;
            let buf = record.bufs.of(side);
            let act = |i: usize, visit: &mut dyn FnMut(Written<'o>)| -> bool {
                match plan.action(record, side, i) {
                    Action::Copy => visit(Written::Copied {
                        buf,
                        member: &members[i],
                    }),
                    Action::Hash => label(&plan.hash, record, visit),
                    Action::Phase => label(&plan.phase, record, visit),
                    Action::Duration => {
                        if let Some((_, nanos)) = plan.access.duration_in_place {
                            visit(Written::Duration(nanos.nanos));
                        }
                    }
                    Action::Dedup => return false,
                    Action::Drop | Action::Dd | Action::Displace | Action::OwnLog => {}
                }
                true
            };
            // As the writer does: the members a reader did not list are copied unchanged.
            let mut plain = 0;
            if let Some(list) = record.specials[side as usize] {
                for &i in list {
                    let i = i as usize;
                    for member in &members[plain..i] {
                        visit(Written::Copied { buf, member });
                    }
                    plain = i + 1;
                    if !act(i, &mut visit) {
                        return false;
                    }
                }
                for member in members.get(plain..).unwrap_or_default() {
                    visit(Written::Copied { buf, member });
                }
            } else if !(0..members.len()).all(|i| act(i, &mut visit)) {
                return false;
            }
        }

        // The added members, in the writer's order.
        for value in [&plan.hash, &plan.phase] {
            if value.position.is_none() {
                label(value, record, &mut visit);
            }
        }
        let Some(attributes) = &plan.access.attributes else {
            return true;
        };
        if http.is_some() {
            visit(Written::Http(Http {
                status_code: code,
                method: found.method,
                path: path.map(|p| &p[..scan::position(p, b'?').unwrap_or(p.len())]),
                endpoint,
            }));
        }
        if let (true, Some(name)) = (attributes.graphql, found.graphql_operation) {
            visit(Written::GraphqlOperation(name));
        }
        if let (true, Some((duration, _))) = (attributes.duration, found.duration) {
            visit(Written::Duration(duration.nanos));
        }
        if attributes.status {
            visit(Written::Status(attributes.level(found)));
        }
        true
    }
}

/// `hash` or `phase` as [`ValuePlan`] writes it: the winner's value, else the fallback.
fn label<'o>(value: &ValuePlan<'o, 'o>, record: &Record<'o>, visit: &mut dyn FnMut(Written<'o>)) {
    let written = match value.winner {
        Some(at) => Some(at.raw(&record.bufs)),
        None => value.fallback,
    };
    if let Some(written) = written {
        visit(Written::Label {
            name: value.name,
            value: written,
        });
    }
}
