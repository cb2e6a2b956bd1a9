// actors/launcher/roles.ts
var ALL_ROLES = ["nats", "dht", "servers", "proxy", "tracker"];

export {
  ALL_ROLES
};
