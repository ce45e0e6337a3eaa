// Preloaded into Portkey's gateway (node --import): its server listens on every interface and
// has no option for the address; a listen(port) without a host binds loopback instead.
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && (args[1] === undefined || typeof args[1] === 'function')) {
    const rest = args[1] === undefined ? args.slice(2) : args.slice(1);
    return listen.call(this, args[0], '127.0.0.1', ...rest);
  }
  return listen.apply(this, args);
};
