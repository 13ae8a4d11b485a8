import type { CaStore, IssuedRecordInput } from './store/index.js';

interface Queued {
  rec: IssuedRecordInput;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Group commit for issued certificates: records that arrive within one turn
 * of the event loop are written in one transaction (one commit), each in its
 * own savepoint. A signing answers only after its record is committed, so
 * nothing issued is ever missing from the store.
 */
export class IssuanceRecorder {
  private queue: Queued[] = [];
  private isScheduled = false;

  constructor(private readonly store: CaStore) {}

  /** Resolves once `rec` is committed; rejects with the store's error for it. */
  record(rec: IssuedRecordInput): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ rec, resolve, reject });
      if (!this.isScheduled) {
        this.isScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.isScheduled = false;
    const batch = this.queue;
    this.queue = [];
    let results: (Error | undefined)[];
    try {
      results = this.store.recordIssuedBatch(batch.map((q) => q.rec));
    } catch (err) {
      for (const q of batch) q.reject(err as Error);
      return;
    }
    batch.forEach((q, i) => {
      const err = results[i];
      if (err) q.reject(err);
      else q.resolve();
    });
  }
}
