// The client side of the trust plane: how agents and the CLI reach the CA.
// It depends on proto/ and certs/ only, never on agent/.
export { CaClient, CaClientError, toClientError, type CaClientOptions } from './ca-client.js';
