import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One HTTP/1.1 connection to a ``FakeKubeAPI``: collects each request and writes its answer. Watch
/// streams are written by their ``WatchSession``.
final class FakeKubeAPIConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private weak var api: FakeKubeAPI?
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(api: FakeKubeAPI) { self.api = api }

    /// The server: TLS (when there is an identity), HTTP/1.1, then this handler.
    static func bootstrap(api: FakeKubeAPI, group: EventLoopGroup,
                          identity: TestCertificateAuthority.ServerIdentity?) throws -> ServerBootstrap {
        let tls = try identity.map { id in
            try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(id.certificatePEM.utf8)).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(id.privateKeyPEM.utf8), format: .pem))))
        }
        return ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    // Without pipelining assistance, which stops reading while a response is open: a
                    // watching client's TLS close_notify must be read and answered at once.
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(FakeKubeAPIConnection(api: api))
                }
            }
    }

    func channelActive(context: ChannelHandlerContext) {
        api?.connectionOpened(context.channel)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        api?.connectionClosed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)   // a failed handshake or a client that went away: nothing to answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            guard let head, let api else { return }
            self.head = nil
            let components = URLComponents(string: head.uri)
            var query: [String: String] = [:]
            for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let request = FakeKubeAPI.Request(method: head.method.rawValue, path: components?.path ?? head.uri, query: query,
                                              headers: headers, body: String(buffer: body), at: .now)
            switch api.handle(request, channel: context.channel) {
            case .watchStarted:
                break
            case .response(let code, let text):
                var headers = HTTPHeaders([("Content-Type", "application/json")])
                headers.add(name: "Content-Length", value: "\(text.utf8.count)")
                let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: code), headers: headers)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// One open watch response: a chunked body of event lines.
///
/// Every write is queued on the channel's event loop (even from the loop itself), so the lines go out
/// in the order they were written under ``FakeKubeAPI``'s lock, which is resourceVersion order.
final class WatchSession: @unchecked Sendable {
    let kind: FakeKubeAPI.Kind
    let channel: Channel
    let bookmarks: Bool
    private let lock = NSLock()
    private var timeout: Scheduled<Void>?
    private var ticker: RepeatedTask?

    init(kind: FakeKubeAPI.Kind, channel: Channel, bookmarks: Bool) {
        self.kind = kind
        self.channel = channel
        self.bookmarks = bookmarks
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
        headers.add(name: "Cache-Control", value: "no-cache, private")
        send(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)))
    }

    /// Writes one event line (a newline is added).
    func write(_ line: String) { write(Array(line.utf8)) }
    func write<Bytes: Sequence<UInt8>>(_ line: Bytes) {
        var buffer = ByteBuffer()
        buffer.writeBytes(line)
        buffer.writeInteger(UInt8(ascii: "\n"))
        send(.body(.byteBuffer(buffer)))
    }

    func writeBookmark(_ resourceVersion: Int) {
        write("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"\(kind.rawValue)\",\"apiVersion\":\"\(kind.apiVersion)\",\"metadata\":{\"resourceVersion\":\"\(resourceVersion)\"}}}")
    }

    /// Ends the response as the API server does at `timeoutSeconds`: a last bookmark when asked, then
    /// the terminating chunk. The connection stays open for the next request.
    func finish(bookmarkResourceVersion: Int?) {
        cancelTimers()
        if let bookmarkResourceVersion { writeBookmark(bookmarkResourceVersion) }
        send(.end(nil))
    }

    /// Half an event line, then the connection closes without the terminating chunk.
    func cut() {
        cancelTimers()
        var buffer = ByteBuffer()
        buffer.writeString("{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"\(kind.rawValue)\",\"metadata\":{\"na")
        send(.body(.byteBuffer(buffer)))
        let channel = self.channel
        channel.eventLoop.execute { channel.close(promise: nil) }
    }

    /// Ends the stream after `timeout` (`expired`) and calls `tick` every `bookmarkEvery`.
    func schedule(timeout: TimeAmount, bookmarkEvery: TimeAmount?, tick: @escaping @Sendable () -> Void,
                  expired: @escaping @Sendable () -> Void) {
        let loop = channel.eventLoop
        lock.withLock {
            self.timeout = loop.scheduleTask(in: timeout) { expired() }
            if let bookmarkEvery {
                ticker = loop.scheduleRepeatedTask(initialDelay: bookmarkEvery, delay: bookmarkEvery) { _ in tick() }
            }
        }
    }

    func cancelTimers() {
        lock.withLock {
            timeout?.cancel()
            ticker?.cancel()
            timeout = nil
            ticker = nil
        }
    }

    private func send(_ part: HTTPServerResponsePart) {
        let channel = self.channel
        channel.eventLoop.execute { channel.writeAndFlush(part, promise: nil) }
    }
}
