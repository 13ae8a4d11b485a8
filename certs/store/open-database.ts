import fs from 'node:fs';

import Database from 'better-sqlite3';

import { migrate } from './schema.js';
import { StoreError, toStoreError } from './store-error.js';

/** How long a writer waits for another connection's lock before failing, in ms. */
export const BUSY_TIMEOUT_MS = 5000;

const FILE_MODE = 0o600;

/**
 * Opens or creates the SQLite file at `path` with mode 0600, sets WAL,
 * foreign keys and a 5 s busy timeout, and runs pending schema migrations;
 * the connection is left at `synchronous=NORMAL`. Throws STORE_INVALID for
 * an empty path, STORE_IO when the file cannot be opened and STORE_CORRUPT
 * when it is not a readable store.
 */
export function openDatabase(path: string): Database.Database {
  if (typeof path !== 'string' || path === '') {
    throw new StoreError('STORE_INVALID', 'store path is empty');
  }
  let db: Database.Database | undefined;
  try {
    // Create the file ourselves so it never exists with a wider mode, then
    // tighten an existing one: the store names every workload and token.
    fs.closeSync(fs.openSync(path, fs.constants.O_CREAT | fs.constants.O_RDWR, FILE_MODE));
    fs.chmodSync(path, FILE_MODE);

    db = new Database(path, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') {
      throw new StoreError('STORE_IO', `store could not switch to WAL mode (got ${mode})`);
    }
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('synchronous = FULL');
    migrate(db);
    db.pragma('synchronous = NORMAL');

    // SQLite gives -wal and -shm the database file's mode; make sure anyway.
    for (const suffix of ['-wal', '-shm']) {
      if (fs.existsSync(path + suffix)) fs.chmodSync(path + suffix, FILE_MODE);
    }
    return db;
  } catch (err) {
    db?.close();
    throw toStoreError(err, `opening store ${path}`);
  }
}
