// Transparent interception: the iptables rules that steer a pod's TCP through
// its agent (pure: options in, steps out), the runner that applies them, and
// the reader of a redirected connection's original destination. It must not
// depend on inbound/, outbound/ or the agent's composition root.
export { CidrSet, parseCidr, unmapIpv4, type Cidr } from './cidr.js';
export {
  INBOUND_CHAIN,
  OUTPUT_CHAIN,
  binaryFor,
  buildApplySteps,
  buildCleanupSteps,
  formatSteps,
  parseCidrList,
  parsePortList,
  type InterceptOptions,
  type IptablesStep,
} from './iptables-rules.js';
export {
  applySteps,
  hasBinary,
  runCommand,
  type CommandResult,
  type CommandRunner,
} from './iptables-applier.js';
export {
  isOriginalDstAddonBuilt,
  loadOriginalDstReader,
  type OriginalDestination,
  type OriginalDstReader,
} from './original-dst.js';
