# cmake --install: the public headers, both libraries, the CMake package (find_package(vkllm CONFIG)
# gives vkllm::vkllm) and vkllm.pc for pkg-config. The command-line tool too when it is built.
include(CMakePackageConfigHelpers)

set(VKLLM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/vkllm)

install(TARGETS vkllm_shared vkllm_static EXPORT vkllm-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${VKLLM_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET vkllm)
  install(TARGETS vkllm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(EXPORT vkllm-targets NAMESPACE vkllm:: DESTINATION ${VKLLM_CMAKE_DIR})
configure_package_config_file(cmake/vkllm-config.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/vkllm-config.cmake
  INSTALL_DESTINATION ${VKLLM_CMAKE_DIR})
# The ABI (soname) is the same across a major version.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/vkllm-config-version.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/vkllm-config.cmake ${CMAKE_CURRENT_BINARY_DIR}/vkllm-config-version.cmake
  DESTINATION ${VKLLM_CMAKE_DIR})

# vkllm.pc finds the prefix from its own place (${pcfiledir}), so an install tree can be moved, and
# `cmake --install --prefix` needs no reconfigure.
set(pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(VKLLM_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH up "/root/${pc_dir}" "/root")
  string(REGEX REPLACE "/$" "" up "${up}")
  set(VKLLM_PC_PREFIX "\${pcfiledir}/${up}")
endif()
configure_file(cmake/vkllm.pc.in ${CMAKE_CURRENT_BINARY_DIR}/vkllm.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/vkllm.pc DESTINATION ${pc_dir})
