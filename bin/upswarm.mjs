#!/usr/bin/env node
// Entry of the `upswarm` CLI: registers the TypeScript loader, then runs the CLI actor.
import { register } from 'tsx/esm/api'
register()
await import('../actors/cli.ts')
