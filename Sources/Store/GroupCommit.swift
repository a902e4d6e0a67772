/// Group commit: writes that arrive while one is in progress are gathered
/// and written together, in one transaction, when it ends. A lone write goes
/// at once; under load each transaction (and each of its statements, which
/// SQLite runs on a thread of its own) carries many calls. Every caller
/// returns only once the transaction holding its item has committed, so
/// durability is as for a write of its own. If a batch fails, each of its
/// items is written alone, so one bad item cannot fail the others.
actor GroupCommit<Item: Sendable, Output: Sendable> {
    typealias Write = @Sendable (Store, [Item]) async throws -> [Output]

    let maxBatch: Int
    let write: Write
    var pending: [(item: Item, continuation: CheckedContinuation<Output, any Error>)] = []
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
            pending.append((item, continuation))
            if !writing {
                writing = true
                Task { await self.drain() }
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
                        entry.continuation.resume(returning: outputs[i])
                    } else {
                        entry.continuation.resume(throwing: StoreError.invalid(field: "batch", reason: "the write returned too few results"))
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
                        entry.continuation.resume(returning: output)
                    } catch {
                        entry.continuation.resume(throwing: error)
                    }
                }
            } catch {
                for entry in batch { entry.continuation.resume(throwing: error) }
            }
        }
        writing = false
        store = nil
    }
}
