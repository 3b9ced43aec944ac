/*
    Aegis bundled rules: executable packers, protectors and installer formats.

    All of these are severity "info": legitimate software uses every one of them, so a match
    never makes a file a threat. It explains a file (why its code is not readable, why its
    content was not unpacked) and gives context to other findings.

    Checked against ClamAV's clamav-testfiles: UPX (clam-upx.exe, clam.ea05/ea06.exe),
    ASPack, MEW, PESpin, Petite, Upack, WWPack32, yC, NSIS, AutoIt. The FSG, MPRESS,
    PECompact, Themida/WinLicense, VMProtect, Enigma, Inno Setup and PyInstaller rules follow
    these formats' well-known section names, markers or entry-point code and were not
    checked against samples.
*/

import "pe"

private rule Aegis_Packers_IsPE
{
    condition:
        uint16(0) == 0x5A4D and pe.is_pe
}

rule Aegis_Packer_UPX
{
    meta:
        description = "Packed with UPX (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "UPX"

    strings:
        $magic = "UPX!"

    condition:
        (Aegis_Packers_IsPE and
            for any s in pe.sections : (s.name == "UPX0" or s.name == "UPX1" or s.name == "UPX2"))
        or
        // ELF: the UPX header ("UPX!") follows the program headers.
        (uint32(0) == 0x464C457F and $magic in (0 .. 0x400))
}

rule Aegis_Packer_ASPack
{
    meta:
        description = "Packed with ASPack (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "ASPack"

    strings:
        $ep = { 60 E8 03 00 00 00 E9 EB 04 5D 45 55 C3 E8 01 00 00 00 }

    condition:
        Aegis_Packers_IsPE and
        (for any s in pe.sections : (s.name == ".aspack") or $ep at pe.entry_point)
}

rule Aegis_Packer_MPRESS
{
    meta:
        description = "Packed with MPRESS (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "MPRESS"

    condition:
        Aegis_Packers_IsPE and
        for any s in pe.sections : (s.name == ".MPRESS1" or s.name == ".MPRESS2")
}

rule Aegis_Packer_PECompact
{
    meta:
        description = "Packed with PECompact (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "PECompact"

    strings:
        $name = "PECompact2" ascii

    condition:
        Aegis_Packers_IsPE and
        (for any s in pe.sections : (s.name == "PEC2" or s.name == "PEC2TO" or s.name == "PEC2MO")
            or $name in (0 .. 0x400))
}

rule Aegis_Packer_FSG
{
    meta:
        description = "Packed with FSG (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "FSG"

    strings:
        $ep20 = { 87 25 ?? ?? ?? ?? 61 94 55 A4 B6 80 FF 13 }
        $ep133 = { BE A4 01 40 00 AD 93 AD 97 AD 56 96 B2 80 A4 B6 80 FF 13 73 F9 }

    condition:
        Aegis_Packers_IsPE and ($ep20 at pe.entry_point or $ep133 at pe.entry_point)
}

rule Aegis_Packer_MEW
{
    meta:
        description = "Packed with MEW (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "MEW"

    condition:
        Aegis_Packers_IsPE and pe.number_of_sections > 0 and
        // MEW leaves code bytes after the NUL that ends the first section name.
        (pe.sections[0].name == "MEW" or pe.sections[0].name startswith "MEW\x00")
}

rule Aegis_Packer_Petite
{
    meta:
        description = "Packed with Petite (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "Petite"

    strings:
        $banner = "Compressed by Petite (c)"

    condition:
        Aegis_Packers_IsPE and
        (for any s in pe.sections : (s.name == ".petite") or $banner in (0 .. 0x400))
}

rule Aegis_Packer_Upack
{
    meta:
        description = "Packed with Upack (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "Upack"

    strings:
        // Upack overlaps its headers: "KERNEL32.DLL" right after "MZ", PE header at 0x10.
        $k32 = "KERNEL32.DLL"

    condition:
        uint16(0) == 0x5A4D and $k32 at 2 and uint32(0x3C) == 0x10 and uint32(0x10) == 0x00004550
}

rule Aegis_Packer_WWPack32
{
    meta:
        description = "Packed with WWPack32 (executable compressor)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "WWPack32"

    condition:
        Aegis_Packers_IsPE and for any s in pe.sections : (s.name == ".WWP32")
}

rule Aegis_Packer_PESpin
{
    meta:
        description = "Protected with PESpin (executable protector)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "PESpin"

    strings:
        $ep = { EB 01 68 60 E8 00 00 00 00 8B 1C 24 83 C3 12 81 2B E8 B1 06 00 FE 4B FD 82 2C 24 }

    condition:
        Aegis_Packers_IsPE and $ep at pe.entry_point
}

rule Aegis_Packer_yC
{
    meta:
        description = "Protected with yoda's Crypter (yC)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "yC"

    strings:
        $ep = { 55 8B EC 53 56 57 60 E8 00 00 00 00 5D 81 ED }

    condition:
        Aegis_Packers_IsPE and $ep at pe.entry_point and
        for any s in pe.sections : (s.name == "yC")
}

rule Aegis_Protector_Themida_WinLicense
{
    meta:
        description = "Protected with Themida / WinLicense (Oreans)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "Themida"

    condition:
        Aegis_Packers_IsPE and
        for any s in pe.sections : (s.name == ".themida" or s.name == ".winlice")
}

rule Aegis_Protector_VMProtect
{
    meta:
        description = "Protected with VMProtect"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "VMProtect"

    condition:
        Aegis_Packers_IsPE and
        for 2 s in pe.sections : (s.name == ".vmp0" or s.name == ".vmp1" or s.name == ".vmp2")
}

rule Aegis_Protector_Enigma
{
    meta:
        description = "Protected with the Enigma Protector"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "Enigma"

    condition:
        Aegis_Packers_IsPE and
        for any s in pe.sections : (s.name == ".enigma1" or s.name == ".enigma2")
}

rule Aegis_Installer_NSIS
{
    meta:
        description = "Nullsoft (NSIS) installer: its files are stored compressed inside"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "NSIS"

    strings:
        // NSIS first header: 0xDEADBEEF "NullsoftInst"
        $header = { EF BE AD DE 4E 75 6C 6C 73 6F 66 74 49 6E 73 74 }

    condition:
        Aegis_Packers_IsPE and $header
}

rule Aegis_Installer_InnoSetup
{
    meta:
        description = "Inno Setup installer: its files are stored compressed inside"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "Inno Setup"

    strings:
        $data = "Inno Setup Setup Data ("

    condition:
        Aegis_Packers_IsPE and $data
}

rule Aegis_Packer_AutoIt_Compiled
{
    meta:
        description = "Compiled AutoIt script (the script is stored encrypted inside)"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "AutoIt"

    strings:
        $ea05 = "AU3!EA05"
        $ea06 = "AU3!EA06"

    condition:
        Aegis_Packers_IsPE and ($ea05 or $ea06)
}

rule Aegis_Packer_PyInstaller
{
    meta:
        description = "PyInstaller bundle: a Python program and its libraries packed into one executable"
        author = "Aegis"
        date = "2026-11-22"
        severity = "info"
        score = 20
        aegis_kind = "heuristic"
        packer = "PyInstaller"

    strings:
        // PyInstaller archive cookie, near the end of the bundle.
        $cookie = { 4D 45 49 0C 0B 0A 0B 0E }

    condition:
        (Aegis_Packers_IsPE or uint32(0) == 0x464C457F) and
        $cookie in (filesize - 0x2000 .. filesize)
}
