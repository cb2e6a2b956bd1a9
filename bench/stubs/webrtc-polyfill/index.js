// bittorrent-tracker imports WebRTC classes; the HTTP/UDP tracker never calls them.
class Unavailable { constructor () { throw new Error('WebRTC is not available in this build') } }
module.exports = { RTCPeerConnection: Unavailable, RTCSessionDescription: Unavailable, RTCIceCandidate: Unavailable }
