/// Group commit: writes that arrive while one is in progress are gathered
/// and written together, in one transaction, when it ends. A lone write goes
/// at once; under load each transaction (and each of its statements, which
/// SQLite runs on a thread of its own) carries many calls. Every caller
/// returns only once the transaction holding its item has committed, so
/// durability is as for a write of its own. If a batch fails, each of its
/// items is written alone, so one bad item cannot fail the others.
///
/// A caller with many items at once (an event loop handing over the calls of
/// one pass) submits them together with `submitAll`: one wait for all of
/// them rather than a task and a continuation each, which cost more than the
/// write itself under load (docs/run-to-completion.md).
actor GroupCommit<Item: Sendable, Output: Sendable> {
    typealias Write = @Sendable (Store, [Item]) async throws -> [Output]

    /// Who waits for an item: its own caller, or a caller of `submitAll` (at this index).
    enum Waiter {
        case one(CheckedContinuation<Output, any Error>)
        case batch(BatchWaiter, Int)
    }

    /// The results of one `submitAll`, resumed when the last has committed
    /// (or failed). Only touched on the actor.
    final class BatchWaiter {
        var results: [Result<Output, any Error>?]
        var remaining: Int
        let continuation: CheckedContinuation<[Result<Output, any Error>], Never>

        init(count: Int, continuation: CheckedContinuation<[Result<Output, any Error>], Never>) {
            results = Array(repeating: nil, count: count); remaining = count; self.continuation = continuation
        }
    }

    let maxBatch: Int
    let write: Write
    var pending: [(item: Item, waiter: Waiter)] = []
    var writing = false
    /// The store written to (always the one that owns this writer; passed in
    /// rather than held from the start, as the store owns the writer).
    var store: Store?

    init(maxBatch: Int, write: @escaping Write) {
        self.maxBatch = max(1, maxBatch)
        self.write = write
    }

    func submit(_ item: Item, to store: Store) async throws -> Output {
        self.store = store
        return try await withCheckedThrowingContinuation { continuation in
            pending.append((item, .one(continuation)))
            startDraining()
        }
    }

    /// Several items, each group-committed as `submit` does; returns each
    /// one's result, in order, once all have committed or failed.
    func submitAll(_ items: [Item], to store: Store) async -> [Result<Output, any Error>] {
        guard !items.isEmpty else { return [] }
        self.store = store
        return await withCheckedContinuation { continuation in
            let waiter = BatchWaiter(count: items.count, continuation: continuation)
            for (i, item) in items.enumerated() { pending.append((item, .batch(waiter, i))) }
            startDraining()
        }
    }

    func startDraining() {
        guard !writing else { return }
        writing = true
        Task { await self.drain() }
    }

    func complete(_ waiter: Waiter, with result: Result<Output, any Error>) {
        switch waiter {
        case .one(let continuation):
            continuation.resume(with: result)
        case .batch(let batch, let i):
            batch.results[i] = result
            batch.remaining -= 1
            if batch.remaining == 0 {
                batch.continuation.resume(returning: batch.results.map {
                    $0 ?? .failure(StoreError.invalid(field: "batch", reason: "an item of the batch was never written"))
                })
            }
        }
    }

    func drain() async {
        while let store, !pending.isEmpty {
            let n = min(maxBatch, pending.count)
            let batch = Array(pending.prefix(n))
            pending.removeFirst(n)
            do {
                let outputs = try await write(store, batch.map(\.item))
                for (i, entry) in batch.enumerated() {
                    if i < outputs.count {
                        complete(entry.waiter, with: .success(outputs[i]))
                    } else {
                        complete(entry.waiter, with: .failure(StoreError.invalid(field: "batch", reason: "the write returned too few results")))
                    }
                }
            } catch where batch.count > 1 {
                // One bad item must not fail the others: each is written on its
                // own, and only those that fail alone report an error.
                for entry in batch {
                    do {
                        guard let output = try await write(store, [entry.item]).first else {
                            throw StoreError.invalid(field: "batch", reason: "the write returned too few results")
                        }
                        complete(entry.waiter, with: .success(output))
                    } catch {
                        complete(entry.waiter, with: .failure(error))
                    }
                }
            } catch {
                for entry in batch { complete(entry.waiter, with: .failure(error)) }
            }
        }
        writing = false
        store = nil
    }
}
