/** The controller's DHCP server: codec, boot policy, lease stores and the server itself. */
export type { BootChoice, BootFiles, ClientKind } from './boot.js';
export { chooseBoot, isIpxe, isPxeClient } from './boot.js';
export type { DhcpPacket, ParseResult } from './codec.js';
export { MessageType, macOf, messageTypeName, Opt, parseDhcp, serializeDhcp } from './codec.js';
export type { Lease, LeaseState, LeaseStore } from './leases.js';
export { JsonFileLeaseStore, MemoryLeaseStore } from './leases.js';
export type {
  Destination,
  DhcpEvent,
  DhcpServerOptions,
  DhcpStats,
  DropReason,
  Reservation,
} from './server.js';
export { DhcpServer, startDhcpServer } from './server.js';
