//! udpchat's lab: what a lossy network does to datagrams, applied in a simulator, a proxy or a chat.
