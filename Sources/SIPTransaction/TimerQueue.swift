/// The timers of every transaction of one endpoint, in one min-heap.
///
/// Why not one event-loop task per timer: SwiftNIO finds a cancelled task in
/// its scheduled-task heap by a linear search, and an endpoint at a few
/// thousand calls a second keeps well over 100,000 timers pending (Timer B,
/// F, J, K and the ACK caches run for up to 64·T1 = 32 s) while cancelling
/// several per transaction. Here a cancel is a dictionary removal: the heap
/// entry is left behind and skipped when it comes up (its generation no
/// longer matches), and the heap is rebuilt when such entries outnumber the
/// live ones. The endpoint arms a single event-loop task for `earliest`.
///
/// Deadlines are plain nanoseconds on a monotonic clock the caller reads,
/// so tests drive the queue with explicit times.
public struct TimerQueue<ID: Hashable & Sendable>: Sendable {
    /// A heap entry is two integers, so sifting copies no strings (a timer's
    /// ID holds its transaction key); the ID is found by generation.
    @usableFromInline
    struct Entry: Sendable {
        @usableFromInline var deadline: UInt64
        @usableFromInline var generation: UInt64
        @inlinable init(deadline: UInt64, generation: UInt64) { self.deadline = deadline; self.generation = generation }
    }

    @usableFromInline var heap: [Entry] = []
    /// Live timers: ID → generation, and generation → (ID, deadline).
    @usableFromInline var live: [ID: UInt64] = [:]
    @usableFromInline var owners: [UInt64: (id: ID, deadline: UInt64)] = [:]
    @usableFromInline var nextGeneration: UInt64 = 0

    public init() {}

    /// Timers scheduled and neither fired nor cancelled.
    @inlinable public var count: Int { live.count }

    @inlinable public func isScheduled(_ id: ID) -> Bool { live[id] != nil }

    /// Schedules `id` at `deadline`, replacing any earlier schedule of it.
    @inlinable public mutating func schedule(_ id: ID, at deadline: UInt64) {
        nextGeneration &+= 1
        if let old = live.updateValue(nextGeneration, forKey: id) { owners[old] = nil }
        owners[nextGeneration] = (id, deadline)
        push(Entry(deadline: deadline, generation: nextGeneration))
        if heap.count > 1024, heap.count > 2 * live.count { rebuild() }
    }

    /// Cancels `id`; returns whether it was scheduled.
    @inlinable @discardableResult
    public mutating func cancel(_ id: ID) -> Bool {
        guard let generation = live.removeValue(forKey: id) else { return false }
        owners[generation] = nil
        return true
    }

    /// The earliest live deadline (stale entries on top are dropped on the way).
    @inlinable public mutating func earliest() -> UInt64? {
        while let top = heap.first {
            if owners[top.generation] != nil { return top.deadline }
            popTop()
        }
        return nil
    }

    /// Removes and returns the timers due at `now`, earliest first.
    @inlinable public mutating func expired(now: UInt64) -> [ID] {
        var due: [ID] = []
        while let top = heap.first, top.deadline <= now {
            popTop()
            if let owner = owners.removeValue(forKey: top.generation) {
                live[owner.id] = nil
                due.append(owner.id)
            }
        }
        return due
    }

    /// The deadline to arm the owner's single event-loop task for, given the
    /// one it is armed for (nil: none): the earliest timer rounded up to a
    /// `tick`, or nil when the armed task already goes off by then (or no
    /// timer is left). Rounding lets timers started together share a
    /// wake-up; a busy owner wakes at most once per tick.
    @inlinable public mutating func deadlineToArm(armed: UInt64?, tick: UInt64 = 5_000_000) -> UInt64? {
        guard let earliest = earliest() else { return nil }
        let at = (earliest / tick + 1) * tick
        if let armed, armed <= at { return nil }
        return at
    }

    @inlinable public mutating func removeAll() {
        heap.removeAll()
        live.removeAll()
        owners.removeAll()
    }

    // MARK: Binary heap on `deadline`

    @inlinable mutating func push(_ e: Entry) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].deadline < heap[parent].deadline else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    @inlinable mutating func popTop() {
        guard !heap.isEmpty else { return }
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(0)
    }

    @inlinable mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < n, heap[l].deadline < heap[smallest].deadline { smallest = l }
            if r < n, heap[r].deadline < heap[smallest].deadline { smallest = r }
            if smallest == i { return }
            heap.swapAt(i, smallest)
            i = smallest
        }
    }

    /// Drops the entries of cancelled and rescheduled timers.
    @inlinable mutating func rebuild() {
        heap = owners.map { Entry(deadline: $0.value.deadline, generation: $0.key) }
        var i = heap.count / 2
        while i > 0 { i -= 1; siftDown(i) }
    }
}
