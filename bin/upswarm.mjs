#!/usr/bin/env node
// The CLI's entry in earlier releases (service units and scripts written for them name it): it
// runs bin/upswarm.cjs, the entry now (CommonJS starts faster, see there).
import './upswarm.cjs'
