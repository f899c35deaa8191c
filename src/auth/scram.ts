// One import point for SCRAM-SHA-256: server side, client side, shared helpers and the key-derivation cache.
export * from './scram-common.ts';
export * from './scram-server.ts';
export * from './scram-client.ts';
export * from './secret-cache.ts';
