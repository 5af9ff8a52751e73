//! Heartbeat's `crc` auth: CRC-32/POSIX parameters without the length
//! suffix that `cksum(1)` adds. Integrity against corruption only.

const POLY: u32 = 0x04C1_1DB7;

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ POLY
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32 (poly 0x04C11DB7, MSB-first, init 0, xorout 0xFFFFFFFF).
pub fn crc32(data: &[u8]) -> u32 {
    let c = data.iter().fold(0u32, |c, &b| {
        (c << 8) ^ TABLE[((c >> 24) as u8 ^ b) as usize]
    });
    !c
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn posix_check_value() {
        assert_eq!(crc32(b"123456789"), 0x765e_7680);
    }

    #[test]
    fn empty_input() {
        assert_eq!(crc32(b""), 0xffff_ffff);
    }
}
