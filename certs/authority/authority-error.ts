import { PalisadeError } from '../errors.js';

/** Raised for requests the CA refuses; the code maps to a gRPC status. */
export class AuthorityError extends PalisadeError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AuthorityError';
  }
}
