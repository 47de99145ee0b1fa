/** The controller's read-only TFTP server for PXE boot; see server.ts. */

export { ErrorCode, type ErrorKind } from './packet.js';
export {
  type DataPump,
  type Peer,
  startTftpServer,
  type TftpLogEvent,
  type TftpOutcome,
  type TftpRequestEvent,
  TftpServer,
  type TftpServerOptions,
  type TftpStats,
} from './server.js';
