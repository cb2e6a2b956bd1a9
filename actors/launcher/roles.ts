// The server-side roles `upswarm up` can start (kept apart so the CLI loads no role to list them).
export const ALL_ROLES = ['nats', 'dht', 'servers', 'proxy', 'tracker', 'notary', 'console'] as const
export type Role = (typeof ALL_ROLES)[number]
