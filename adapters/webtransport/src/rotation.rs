//! Rotation of self-signed certificates. A certificate pinned by hash lives at most 14 days,
//! so the server makes the next one before the current one expires, in two steps:
//!
//! 1. **Announce** (`renew_before` ahead of the current certificate's expiry): the new
//!    certificate is made and its hash joins the offer (`GET /webtransport`), while the old
//!    one is still served. A client that fetches the offer now accepts either.
//! 2. **Switch** (`announce_ahead` later): the endpoint serves the new certificate to new
//!    handshakes; sessions already open are not touched. The old hash stays in the offer
//!    until the old certificate expires, so an offer fetched just before the switch still
//!    works.
//!
//! The offer's `valid_until` is the time up to which its hashes are sure to cover the
//! served certificate: the newest certificate's announce time plus `announce_ahead`. A
//! client that connects later fetches the offer again.
//!
//! [`Rotation`] is the schedule alone (times in, decisions out), so it is tested without
//! clocks; the endpoint's task sleeps until [`Rotation::next_event`] and applies each
//! [`Step`].

use crate::certificate::{
    CertificateError, CertificateHash, MAX_PINNED_VALIDITY, ServedCertificate,
};
use std::time::{Duration, SystemTime};

/// When self-signed certificates are made and put in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Each certificate's whole validity (at most 14 days).
    pub validity: Duration,
    /// How long before the served certificate expires its successor is made and announced.
    pub renew_before: Duration,
    /// How long a new certificate is announced before it is served.
    pub announce_ahead: Duration,
}

impl Default for RotationPolicy {
    /// 14 days less a minute; announced 3 days before expiry; served an hour later.
    fn default() -> Self {
        RotationPolicy {
            validity: MAX_PINNED_VALIDITY - Duration::from_secs(60),
            renew_before: Duration::from_secs(3 * 24 * 3600),
            announce_ahead: Duration::from_secs(3600),
        }
    }
}

/// What clients are told to pin: the hashes to accept, and until when they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateOffer {
    /// Hashes of the served certificate and of any announced or still-valid retired one,
    /// the served one first. Empty for a certificate from files (verified the ordinary way).
    pub hashes: Vec<CertificateHash>,
    /// Fetch the offer again after this; `None` when it does not change.
    pub valid_until: Option<SystemTime>,
}

/// A certificate as the schedule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    hash: CertificateHash,
    not_after: SystemTime,
}

/// What [`Rotation::step`] decided.
#[derive(Debug)]
pub enum Step {
    /// Nothing to do yet.
    Idle,
    /// A new certificate was made and announced; it is served from its switch time on.
    Announced,
    /// Serve this certificate to new handshakes from now on.
    Switch(ServedCertificate),
}

/// The rotation schedule of self-signed certificates.
#[derive(Debug)]
pub struct Rotation {
    policy: RotationPolicy,
    serving: Entry,
    /// The announced certificate and when it is to be served.
    next: Option<(ServedCertificate, SystemTime)>,
    /// Certificates no longer served whose hashes stay in the offer until they expire.
    retired: Vec<Entry>,
}

impl Rotation {
    /// The schedule for `serving`, a certificate with an expiry (self-signed); `None` for one
    /// without (from files: not rotated).
    pub fn new(policy: RotationPolicy, serving: &ServedCertificate) -> Option<Self> {
        Some(Rotation {
            policy,
            serving: Entry {
                hash: serving.hash,
                not_after: serving.not_after?,
            },
            next: None,
            retired: Vec::new(),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> RotationPolicy {
        self.policy
    }

    fn announce_at(&self, entry: &Entry) -> SystemTime {
        entry
            .not_after
            .checked_sub(self.policy.renew_before)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// When [`Rotation::step`] next has something to do.
    pub fn next_event(&self) -> SystemTime {
        let event = match &self.next {
            None => self.announce_at(&self.serving),
            Some((_, switch_at)) => *switch_at,
        };
        self.retired
            .iter()
            .map(|entry| entry.not_after)
            .fold(event, SystemTime::min)
    }

    /// Advances the schedule to `now`; `make` makes a new certificate when one is due.
    pub fn step(
        &mut self,
        now: SystemTime,
        make: impl FnOnce(SystemTime) -> Result<ServedCertificate, CertificateError>,
    ) -> Result<Step, CertificateError> {
        self.retired.retain(|entry| entry.not_after > now);
        match self.next.take() {
            Some((certificate, switch_at)) if now >= switch_at => {
                let Some(not_after) = certificate.not_after else {
                    // `make` gave a certificate without an expiry: serve it, stop rotating.
                    return Ok(Step::Switch(certificate));
                };
                self.retired.push(self.serving);
                self.serving = Entry {
                    hash: certificate.hash,
                    not_after,
                };
                Ok(Step::Switch(certificate))
            }
            Some(pending) => {
                self.next = Some(pending);
                Ok(Step::Idle)
            }
            None if now >= self.announce_at(&self.serving) => {
                let certificate = make(now)?;
                self.next = Some((certificate, now + self.policy.announce_ahead));
                Ok(Step::Announced)
            }
            None => Ok(Step::Idle),
        }
    }

    /// What clients are to pin now.
    pub fn offer(&self) -> CertificateOffer {
        let mut hashes = vec![self.serving.hash];
        let newest = match &self.next {
            Some((certificate, _)) => {
                hashes.push(certificate.hash);
                certificate.not_after.map(|not_after| Entry {
                    hash: certificate.hash,
                    not_after,
                })
            }
            None => Some(self.serving),
        };
        hashes.extend(self.retired.iter().map(|entry| entry.hash));
        CertificateOffer {
            hashes,
            valid_until: newest.map(|entry| {
                (self.announce_at(&entry) + self.policy.announce_ahead).min(entry.not_after)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn make(now: SystemTime) -> Result<ServedCertificate, CertificateError> {
        ServedCertificate::self_signed(&[], RotationPolicy::default().validity, now)
    }

    #[test]
    fn a_new_certificate_is_announced_then_served_and_the_old_hash_stays_until_it_expires() {
        let start = SystemTime::now();
        let first = make(start).expect("a certificate");
        let first_expiry = first.not_after.expect("an expiry");
        let policy = RotationPolicy::default();
        let mut rotation = Rotation::new(policy, &first).expect("self-signed rotates");

        let offer = rotation.offer();
        assert_eq!(offer.hashes, vec![first.hash]);
        let announce_at = first_expiry - policy.renew_before;
        assert_eq!(offer.valid_until, Some(announce_at + policy.announce_ahead));
        assert_eq!(rotation.next_event(), announce_at);

        // Before the announce time nothing happens, and nothing is made.
        let step = rotation.step(announce_at - HOUR, |_| panic!("made too early"));
        assert!(matches!(step, Ok(Step::Idle)));

        // Announce: both hashes offered, the old one still served.
        let step = rotation.step(announce_at, make).expect("a step");
        assert!(matches!(step, Step::Announced));
        let offer = rotation.offer();
        assert_eq!(offer.hashes.len(), 2);
        assert_eq!(offer.hashes[0], first.hash);
        let second_hash = offer.hashes[1];
        assert_ne!(second_hash, first.hash);
        assert_eq!(rotation.next_event(), announce_at + policy.announce_ahead);
        assert!(offer.valid_until.expect("a time") > first_expiry);

        // Switch: the new certificate is served; the old hash is still offered.
        let step = rotation
            .step(announce_at + policy.announce_ahead, |_| {
                panic!("made twice")
            })
            .expect("a step");
        let Step::Switch(second) = step else {
            panic!("expected a switch, got {step:?}");
        };
        assert_eq!(second.hash, second_hash);
        assert_eq!(rotation.offer().hashes, vec![second_hash, first.hash]);
        assert_eq!(
            rotation.next_event(),
            first_expiry,
            "the old hash leaves when it expires"
        );

        // Once the old certificate expired, only the new hash is offered.
        let step = rotation.step(first_expiry + Duration::from_secs(1), |_| {
            panic!("too early")
        });
        assert!(matches!(step, Ok(Step::Idle)));
        assert_eq!(rotation.offer().hashes, vec![second_hash]);
        let second_expiry = second.not_after.expect("an expiry");
        assert_eq!(rotation.next_event(), second_expiry - policy.renew_before);
        assert!(second_expiry > first_expiry + 10 * DAY);
    }

    #[test]
    fn certificates_from_files_are_not_rotated() {
        let mut certificate = make(SystemTime::now()).expect("a certificate");
        certificate.not_after = None;
        assert!(Rotation::new(RotationPolicy::default(), &certificate).is_none());
    }

    #[test]
    fn a_failed_make_is_retried_at_the_next_step() {
        let start = SystemTime::now();
        let first = make(start).expect("a certificate");
        let mut rotation = Rotation::new(RotationPolicy::default(), &first).expect("rotates");
        let due = rotation.next_event();
        let failed = rotation.step(due, |_| Err(CertificateError::TooLong(DAY * 30)));
        assert!(failed.is_err());
        assert_eq!(rotation.offer().hashes, vec![first.hash]);
        assert!(matches!(
            rotation.step(due + HOUR, make),
            Ok(Step::Announced)
        ));
    }
}
