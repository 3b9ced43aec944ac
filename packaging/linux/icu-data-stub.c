/* An empty ICU data library for the bundle (packaging/build-linux.sh builds it with the C
 * compiler of the build machine; nothing prebuilt is stored).
 *
 * Qt's libQt6Core links ICU, and PySide6's wheel ships ICU's full data library
 * (libicudata.so.NN, 32 MB; 12 MB of the compressed bundle). Aegis's tray app uses none of
 * what that data serves (collation tables, legacy code pages, time-zone and locale display
 * names, break rules of ICU's own text APIs); Qt falls back to its own code where ICU reports
 * missing data. This library exports the one symbol ICU looks up, icudtNN_dat, holding a
 * valid common-data header with an empty table of contents, so ICU loads, finds no item and
 * says so; it then looks for a data file (ICU_DATA), as with any ICU built without data.
 *
 * Layout (ICU's "common data" format, as documented in its udata.h/ucmndata.h): a 32-byte
 * header (header size, two magic bytes, the UDataInfo block naming the common data's
 * table-of-contents format "ToCP" 1.0, padding), then the table of contents: 0 entries. */
#include <stdint.h>

#ifndef ICU_MAJOR
#error "build with -DICU_MAJOR=NN (the major version in libicudata.so.NN)"
#endif
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define ENTRY CAT(CAT(icudt, ICU_MAJOR), _dat)

struct icu_common_data {
    uint16_t header_size;
    uint8_t magic1, magic2;
    /* UDataInfo */
    uint16_t info_size, reserved_word;
    uint8_t is_big_endian, charset_family, sizeof_uchar, reserved_byte;
    uint8_t data_format[4], format_version[4], data_version[4];
    uint8_t padding[8];
    /* table of contents */
    uint32_t count;
    uint32_t toc[2];
};

__attribute__((visibility("default"))) const struct icu_common_data ENTRY = {
    32, 0xda, 0x27,
    20, 0,
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    1,
#else
    0,
#endif
    0 /* ASCII family */, 2, 0,
    {'T', 'o', 'C', 'P'}, {1, 0, 0, 0}, {0, 0, 0, 0},
    {0},
    0,
    {0, 0},
};
