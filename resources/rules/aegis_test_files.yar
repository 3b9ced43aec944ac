/*
    Aegis bundled rules: harmless anti-malware test files.

    A fresh install detects these without any download, so that users (and our tests) can
    check that scanning works end to end. EICAR is a built-in detector, not a rule.

    ClamAV test files (clamav-testfiles, e.g. /usr/share/clamav-testfiles):
      * clam.exe is a 544-byte PE that only shows a message box. The rule below matches its
        bytes wherever they are stored uncompressed: clam.exe itself and, once the scanner has
        unpacked them, the archives and compressed forms (zip, 7z, tar.gz, bz2, ...). Stored
        copies are matched in place too (cpio, cab, pdf, tnef, clam_IScab_ext.exe); in
        clam.ole.doc the copy is split across OLE sectors and needs the OLE to be unpacked.
      * clam-fsg.exe and clam-wwpack.exe are a small "wrapper" program that embeds clam.exe;
        its description string is matched by the second rule.
      * The other packed variants (UPX, ASPack, MEW, PESpin, Petite, Upack, yC, AutoIt ea05 /
        ea06, NSIS, InstallShield) keep clam.exe compressed or encrypted: no byte pattern of
        clam.exe survives, so they are not detected by these rules (aegis_packers.yar names
        the packer as information).
*/

rule Aegis_Test_ClamAV_TestFile
{
    meta:
        description = "ClamAV's harmless test program clam.exe (clamav-testfiles), not malware"
        author = "Aegis"
        date = "2026-11-22"
        severity = "malicious"
        score = 100
        aegis_kind = "signature"
        reference = "https://github.com/Cisco-Talos/clamav/tree/main/unit_tests/input"

    strings:
        // DOS-stub code at offset 0x40 of clam.exe (decodes and shows the ClamAV message).
        $stub = { BB 71 10 40 00 33 C0 50 50 8B F3 53 53 50 B0 29 40 30 04 66 AC 79 F9 BA 31
                  00 78 0D AD 50 FF 66 70 0E 1F BE 31 00 E9 E5 FF B4 09 CD 21 B4 4C CD 21 }
        // Import-by-name "CLAMessageBoxA" (offset 0xE4), NUL-terminated on both sides.
        $import = { 00 43 4C 41 4D 65 73 73 61 67 65 42 6F 78 41 00 }
        // Section header "[CLAMAV]" (offset 0x1F8) followed by its virtual size 0x1000.
        $section = { 5B 43 4C 41 4D 41 56 5D 00 10 00 00 }

    condition:
        for any i in (1..#stub) : (
            $import in (@stub[i] .. @stub[i] + 0x100) and
            $section in (@stub[i] .. @stub[i] + 0x200)
        )
}

rule Aegis_Test_ClamAV_TestFile_Wrapper
{
    meta:
        description = "ClamAV's harmless test wrapper program that embeds clam.exe (clam-fsg.exe, clam-wwpack.exe), not malware"
        author = "Aegis"
        date = "2026-11-22"
        severity = "malicious"
        score = 100
        aegis_kind = "signature"
        reference = "https://github.com/Cisco-Talos/clamav/tree/main/unit_tests/input"

    strings:
        // "This is a ClamAV test file with the embedded clam.exe\0\0\0ClamAV\0" (version info)
        $desc = { 54 68 69 73 20 69 73 20 61 20 43 6C 61 6D 41 56 20 74 65 73 74 20 66 69 6C
                  65 20 77 69 74 68 20 74 68 65 20 65 6D 62 65 64 64 65 64 20 63 6C 61 6D 2E
                  65 78 65 00 00 00 43 6C 61 6D 41 56 00 }

    condition:
        uint16(0) == 0x5A4D and
        uint32(0x3C) < filesize - 4 and
        uint32(uint32(0x3C)) == 0x00004550 and
        $desc
}
