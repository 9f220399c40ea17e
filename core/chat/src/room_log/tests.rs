use super::*;
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

fn lobby() -> RoomId {
    RoomId::parse("lobby").expect("room id")
}

fn message(seq: Seq) -> ChatMessage {
    ChatMessage {
        id: seq * 10,
        seq,
        room_id: "lobby".to_owned(),
        message: format!("m{seq}"),
        rand_id: "Wren1".to_owned(),
        name_tag: "#ABCDEF".to_owned(),
        created_at: "2026-11-22T10:00:00.000Z".to_owned(),
        ip_address: "10.0".to_owned(),
    }
}

fn delivered(log: &mut RoomLog) -> Vec<Seq> {
    std::iter::from_fn(|| log.poll_deliver())
        .map(|m| m.seq)
        .collect()
}

fn tracked_at(head: Seq, now: Instant) -> RoomLog {
    let mut log = RoomLog::new(RoomLogConfig::default());
    log.track(&lobby());
    log.observe_head(&lobby(), head, now);
    log
}

#[test]
fn in_order_messages_pass_straight_through() {
    let now = Instant::now();
    let mut log = tracked_at(0, now);
    for seq in 1..=3 {
        log.on_message(message(seq), now);
    }
    assert_eq!(delivered(&mut log), [1, 2, 3]);
    assert_eq!(log.poll_timeout(), None);
}

#[test]
fn a_swapped_pair_is_put_back_in_order_without_a_store_read() {
    let now = Instant::now();
    let mut log = tracked_at(78, now);
    log.on_message(message(80), now);
    assert!(delivered(&mut log).is_empty(), "80 waits for 79");
    assert_eq!(
        log.poll_timeout(),
        Some(now + RoomLogConfig::default().gap_wait)
    );
    log.on_message(message(79), now + MS);
    assert_eq!(delivered(&mut log), [79, 80]);
    assert_eq!(log.poll_timeout(), None, "the hole closed: no repair");
}

#[test]
fn a_lost_message_is_read_from_the_store_after_the_wait() {
    let now = Instant::now();
    let mut log = tracked_at(1, now);
    log.on_message(message(3), now);
    log.on_message(message(4), now);
    let due = log.poll_timeout().expect("a repair is due");
    log.handle_timeout(due - MS);
    assert_eq!(log.poll_repair(), None, "not yet");
    log.handle_timeout(due);
    let repair = log.poll_repair().expect("repair");
    assert_eq!(repair.after, 1);
    assert_eq!(
        log.poll_timeout(),
        None,
        "no second repair while one is read"
    );
    log.on_repaired(&repair, Some(vec![message(2), message(3), message(4)]), due);
    assert_eq!(delivered(&mut log), [2, 3, 4]);
    assert_eq!(log.repaired(), 1);
    assert_eq!(log.poll_timeout(), None);
}

#[test]
fn a_failed_repair_is_tried_again() {
    let now = Instant::now();
    let mut log = tracked_at(0, now);
    log.on_message(message(2), now);
    log.handle_timeout(now + Duration::from_secs(1));
    let repair = log.poll_repair().expect("repair");
    log.on_repaired(&repair, None, now + Duration::from_secs(1));
    let retry = log.poll_timeout().expect("retry scheduled");
    log.handle_timeout(retry);
    let again = log.poll_repair().expect("second repair");
    log.on_repaired(&again, Some(vec![message(1), message(2)]), retry);
    assert_eq!(delivered(&mut log), [1, 2]);
}

#[test]
fn duplicates_and_old_messages_are_dropped() {
    let now = Instant::now();
    let mut log = tracked_at(5, now);
    log.on_message(message(5), now);
    log.on_message(message(6), now);
    log.on_message(message(6), now);
    assert_eq!(delivered(&mut log), [6]);
}

#[test]
fn until_the_head_is_known_messages_are_held() {
    let now = Instant::now();
    let mut log = RoomLog::new(RoomLogConfig::default());
    log.track(&lobby());
    log.on_message(message(8), now);
    log.on_message(message(9), now);
    assert!(delivered(&mut log).is_empty());
    // The subscriber read head 8: it has 8 from the store, so delivery starts at 9.
    log.observe_head(&lobby(), 8, now);
    assert_eq!(delivered(&mut log), [9]);
}

#[test]
fn a_head_ahead_of_delivery_is_read_if_the_broker_does_not_bring_it() {
    let now = Instant::now();
    let mut log = tracked_at(3, now);
    log.observe_head(&lobby(), 5, now);
    let due = log.poll_timeout().expect("repair due");
    log.handle_timeout(due);
    let repair = log.poll_repair().expect("repair");
    assert_eq!(repair.after, 3);
    log.on_repaired(&repair, Some(vec![message(4), message(5)]), due);
    assert_eq!(delivered(&mut log), [4, 5]);
}

#[test]
fn a_reset_reads_every_tracked_room_at_once() {
    let now = Instant::now();
    let mut log = tracked_at(10, now);
    let other = RoomId::parse("other").expect("room id");
    log.track(&other);
    log.observe_head(&other, 0, now);
    log.on_reset(now);
    assert_eq!(log.poll_timeout(), Some(now));
    log.handle_timeout(now);
    let mut rooms: Vec<_> = std::iter::from_fn(|| log.poll_repair())
        .map(|r| (r.room.as_str().to_owned(), r.after))
        .collect();
    rooms.sort();
    assert_eq!(rooms, [("lobby".to_owned(), 10), ("other".to_owned(), 0)]);
}

#[test]
fn a_full_repair_read_asks_for_more() {
    let now = Instant::now();
    let config = RoomLogConfig {
        repair_batch: 2,
        ..RoomLogConfig::default()
    };
    let mut log = RoomLog::new(config);
    log.track(&lobby());
    log.observe_head(&lobby(), 0, now);
    log.on_reset(now);
    log.handle_timeout(now);
    let repair = log.poll_repair().expect("repair");
    log.on_repaired(&repair, Some(vec![message(1), message(2)]), now);
    assert_eq!(log.poll_timeout(), Some(now));
    log.handle_timeout(now);
    let next = log.poll_repair().expect("next read");
    assert_eq!(next.after, 2);
}

#[test]
fn held_messages_are_bounded() {
    let now = Instant::now();
    let config = RoomLogConfig {
        max_held: 3,
        ..RoomLogConfig::default()
    };
    let mut log = RoomLog::new(config);
    log.track(&lobby());
    log.observe_head(&lobby(), 0, now);
    for seq in 2..=10 {
        log.on_message(message(seq), now);
    }
    log.on_message(message(1), now);
    // 2..=4 were held and 5..=10 dropped; 1 then took the place of 4, the newest held.
    assert_eq!(delivered(&mut log), [1, 2, 3]);
    assert!(
        log.poll_timeout().is_some(),
        "the rest is read from the store"
    );
}

#[test]
fn untracked_rooms_deliver_nothing() {
    let now = Instant::now();
    let mut log = tracked_at(0, now);
    log.untrack(&lobby());
    log.on_message(message(1), now);
    assert!(delivered(&mut log).is_empty());
    assert!(!log.is_tracked(&lobby()));
}

/// One step of the model: what the store, the broker and the clock may do.
#[derive(Debug, Clone)]
enum Step {
    /// A writer commits the next message; the broker will carry it (or not).
    Append,
    /// The broker delivers the in-flight message at this index (modulo the count).
    Deliver(usize),
    /// The broker delivers it twice.
    Duplicate(usize),
    /// The broker loses it.
    Drop(usize),
    /// Time passes (milliseconds).
    Advance(u64),
    /// The pending store read at this index is answered, or fails.
    Answer(usize, bool),
    /// The broker reconnected.
    Reset,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Append),
        4 => any::<usize>().prop_map(Step::Deliver),
        1 => any::<usize>().prop_map(Step::Duplicate),
        1 => any::<usize>().prop_map(Step::Drop),
        2 => (0u64..400).prop_map(Step::Advance),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Step::Answer(i, ok)),
        1 => Just(Step::Reset),
    ]
}

/// The model: a store (the truth), the broker's in-flight messages, the reads the log asked
/// for, and what it delivered.
struct Model {
    log: RoomLog,
    now: Instant,
    stored: Seq,
    in_flight: Vec<Seq>,
    reads: Vec<Repair>,
    out: Vec<Seq>,
    start: Seq,
}

impl Model {
    fn new(start: Seq, repair_batch: usize) -> Self {
        let now = Instant::now();
        let mut log = RoomLog::new(RoomLogConfig {
            repair_batch,
            max_held: 8,
            ..RoomLogConfig::default()
        });
        log.track(&lobby());
        log.observe_head(&lobby(), start, now);
        Model {
            log,
            now,
            stored: start,
            in_flight: Vec::new(),
            reads: Vec::new(),
            out: Vec::new(),
            start,
        }
    }

    fn read(&self, repair: &Repair) -> Vec<ChatMessage> {
        (repair.after + 1..=self.stored)
            .take(repair.limit)
            .map(message)
            .collect()
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Append => {
                self.stored += 1;
                self.in_flight.push(self.stored);
            }
            Step::Deliver(i) | Step::Duplicate(i) | Step::Drop(i) if !self.in_flight.is_empty() => {
                let i = i % self.in_flight.len();
                let seq = match step {
                    Step::Duplicate(_) => self.in_flight[i],
                    _ => self.in_flight.remove(i),
                };
                if !matches!(step, Step::Drop(_)) {
                    self.log.on_message(message(seq), self.now);
                }
            }
            Step::Deliver(_) | Step::Duplicate(_) | Step::Drop(_) => {}
            Step::Advance(ms) => {
                self.now += Duration::from_millis(ms);
                self.log.handle_timeout(self.now);
            }
            Step::Answer(i, ok) if !self.reads.is_empty() => {
                let repair = self.reads.remove(i % self.reads.len());
                let read = ok.then(|| self.read(&repair));
                self.log.on_repaired(&repair, read, self.now);
            }
            Step::Answer(..) => {}
            Step::Reset => self.log.on_reset(self.now),
        }
        self.collect();
    }

    fn collect(&mut self) {
        self.reads
            .extend(std::iter::from_fn(|| self.log.poll_repair()));
        self.out
            .extend(std::iter::from_fn(|| self.log.poll_deliver()).map(|m| m.seq));
    }

    /// The broker's link comes back (a reset), then time runs and every read is answered
    /// until the log has nothing left to do.
    fn settle(&mut self) {
        self.in_flight.clear();
        self.log.on_reset(self.now);
        for _ in 0..1000 {
            self.collect();
            if let Some(repair) = self.reads.pop() {
                let read = self.read(&repair);
                self.log.on_repaired(&repair, Some(read), self.now);
                continue;
            }
            match self.log.poll_timeout() {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.log.handle_timeout(self.now);
                }
                None => break,
            }
        }
        self.collect();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the broker does (reorder, duplicate, lose) and whenever the store answers or
    /// fails, the log hands out the room strictly in seq order with no hole, and once the
    /// broker is back and time has passed it has handed out everything stored.
    #[test]
    fn the_log_never_reorders_never_skips_and_catches_up(
        start in 0u64..5,
        repair_batch in 1usize..6,
        steps in proptest::collection::vec(step(), 0..200),
    ) {
        let mut model = Model::new(start, repair_batch);
        for step in &steps {
            model.apply(step);
            let expected: Vec<Seq> = (model.start + 1..).take(model.out.len()).collect();
            prop_assert_eq!(&model.out, &expected, "after {:?}", step);
        }
        model.settle();
        let everything: Vec<Seq> = (model.start + 1..=model.stored).collect();
        prop_assert_eq!(model.out, everything);
    }
}
