// The ESM entry point: the same API as the CommonJS one (index.js), as named exports.
import tenure from './index.js'

export const {
  Client,
  Lease,
  Kv,
  Watch,
  TenureError,
  InvalidArgument,
  LimitMismatch,
  FencedOut,
  RequestFinished,
  ResourceExhausted,
  Unauthenticated,
  PermissionDenied,
  Compacted,
  QuorumAtRisk,
  LockTimeout,
  LeaseLost,
  Cancelled,
  Unavailable,
  InternalError,
  errorClasses,
  ERROR_CODES,
  DEFAULT_ENDPOINT,
} = tenure

export default tenure
