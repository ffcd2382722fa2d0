import asyncio
import contextlib


class TcpRelay:
    """Relays connections from a local port of its own to a real server, and can cut them.

    The shared database server must stay up for every other test, so an outage is made here,
    in the network between the app and the server, as a failed link or a restarting server
    looks to the app: `stop` drops every relayed connection and refuses new ones, `start`
    lets them through again."""

    def __init__(self, port: int, target_host: str, target_port: int) -> None:
        self.port = port
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in self._connections:
            connection.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _relay(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server = await asyncio.open_connection(*self._target)
        except OSError:
            client.transport.abort()
            return
        self._connections |= {client, server}
        try:
            await asyncio.gather(
                _pipe(client_reader, server), _pipe(server_reader, client), return_exceptions=True
            )
        finally:
            self._connections -= {client, server}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
