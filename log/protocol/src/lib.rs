//! RocketMQ remoting protocol codec (in progress).
