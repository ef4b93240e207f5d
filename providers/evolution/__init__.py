"""Evolution's One Wallet protocol: JSON callbacks authenticated by a static token, amounts as numbers."""
